"""MessagePack framing for rows joined by hand: the snapshot's kept task rows
(`core/rows.py`) and the registry's packed prompt history (`core/history.py`)."""

from __future__ import annotations


def array_header(length: int) -> bytes:
    """The MessagePack header of an array of `length` items."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")
