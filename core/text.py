"""Text safe to show on a terminal: control and bidi characters made visible escapes.

A description, question, answer or command comes from whoever submitted it. Written
raw to a terminal, a carriage return or an escape sequence could paint over what a
command really runs, right where a person decides on it.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` with control and bidi characters shown as escapes (`\\r`, `\\x1b`, `\\u202e`)."""
    return _CONTROL.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`text` made `printable` line by line: its line breaks kept, every other control shown."""
    return "\n".join(printable(line.removesuffix("\r")) for line in text.split("\n"))


def one_line(text: str) -> str:
    """The first line of `text`, marked with " …" if more follows, made `printable`."""
    first, newline, _ = text.partition("\n")
    if newline:
        first = first.removesuffix("\r") + " …"
    return printable(first)


def local_time(ts: float | None) -> str | None:
    """A wall-clock time as the command line prints it ("2026-12-04 21:50:03"); None for none."""
    import datetime

    if not ts:
        return None
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
