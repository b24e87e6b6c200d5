"""The registry's prompts by id: open ones as objects, closed ones packed by blocks of ids,
since a closed prompt never changes."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import msgspec

from core.model import Prompt, PromptState
from core.packing import array_header

BLOCK = 64
"""Prompt ids per block: a block whose prompts have all closed is kept as one string."""

PACK_EVERY = 1024
"""Prompts kept one by one before the blocks they complete are packed."""

LEVEL = 1
"""zlib level of a packed block: rows of one block repeat field names, the asker's
session and working directory, the question and the answer, so even the fastest level
keeps ~15 B of a plain question's 79 and ~26 B of a shell command's 311 (~25 µs a block)."""

_ENCODER = msgspec.msgpack.Encoder()


class _PromptRow(Prompt, array_like=True, gc=False):
    """A prompt as a packed row: its fields' values as a MessagePack array, in `Prompt`'s
    order (what encoding `astuple(prompt)` writes)."""


class _RowId(msgspec.Struct, array_like=True, gc=False):
    """A row's first field alone: decoding it skips the rest without building it."""

    id: int


_DECODER = msgspec.msgpack.Decoder(list[_PromptRow])
_ROWS = msgspec.msgpack.Decoder(list[msgspec.Raw])
_ROW_ID = msgspec.msgpack.Decoder(_RowId)
_ROW = msgspec.msgpack.Decoder(_PromptRow)


def pack(prompts: Iterable[Prompt]) -> bytes:
    """The prompts as one MessagePack array of rows, compressed."""
    rows = [_ENCODER.encode(msgspec.structs.astuple(p)) for p in prompts]
    return zlib.compress(b"".join([array_header(len(rows)), *rows]), LEVEL)


def unpack(packed: bytes) -> list[Prompt]:
    """The prompts `pack` wrote, equal field by field."""
    return [_prompt(row) for row in _DECODER.decode(zlib.decompress(packed))]


def unpack_one(packed: bytes, prompt_id: int) -> Prompt | None:
    """The prompt with that id among those `pack` wrote, the others left undecoded (an
    action's input may be up to 256 KiB)."""
    for raw in _ROWS.decode(zlib.decompress(packed)):
        if _ROW_ID.decode(raw).id == prompt_id:
            return _prompt(_ROW.decode(raw))
    return None


def _prompt(row: _PromptRow) -> Prompt:
    return Prompt(**msgspec.structs.asdict(row))


class PromptStore:
    """Every prompt held, by id.

    A closed prompt held as a Struct cost ~370 B with its floats, id and dict slot, more
    than its finished task (docs/BENCHMARKS.md, registry memory). Once every prompt of a
    block of `BLOCK` ids has closed and no new id can land in it, the block is packed
    into one compressed string of rows (~15-30 B a prompt); reading a packed prompt
    decompresses its block and decodes its own row (~20-30 µs), which only history reads do: the registry changes open prompts alone, and
    those are never packed. Dropping a packed prompt unpacks its block.
    """

    def __init__(self, *, pack_every: int = PACK_EVERY) -> None:
        self._loose: dict[int, Prompt] = {}
        """Prompts not packed: every open one, and closed ones in blocks not packed yet."""
        self._packed: dict[int, tuple[int, bytes]] = {}
        """Block number -> (prompts in it, their rows in id order), all closed."""
        self._pack_every = pack_every
        self._pack_at = pack_every
        """Loose prompts at which to try packing: raised past what a try leaves, so
        blocks held open by a pending prompt are not scanned at every add."""
        self._next_id = 0
        """One past the highest id added: a block below its block takes no new id."""

    def __len__(self) -> int:
        return len(self._loose) + self.packed

    @property
    def packed(self) -> int:
        """Prompts held packed."""
        return sum(count for count, _ in self._packed.values())

    def __getitem__(self, prompt_id: int) -> Prompt:
        """The prompt: the held object while loose, a decoded equal one once packed.

        Raises:
            KeyError: no such prompt.
        """
        prompt = self.get(prompt_id)
        if prompt is None:
            raise KeyError(prompt_id)
        return prompt

    def get(self, prompt_id: int) -> Prompt | None:
        """The prompt with that id (see `__getitem__`), or None."""
        prompt = self._loose.get(prompt_id)
        if prompt is not None:
            return prompt
        kept = self._packed.get(prompt_id // BLOCK)
        if kept is None:
            return None
        return unpack_one(kept[1], prompt_id)

    def add(self, prompt: Prompt) -> None:
        """Hold a prompt new to the store (ids come in increasing order)."""
        self._loose[prompt.id] = prompt
        self._next_id = max(self._next_id, prompt.id + 1)
        if len(self._loose) >= self._pack_at:
            self.pack_closed()

    def drop(self, prompt_ids: Iterable[int]) -> None:
        """Let go of these prompts (unknown ids are passed over)."""
        for prompt_id in prompt_ids:
            if self._loose.pop(prompt_id, None) is None:
                kept = self._packed.pop(prompt_id // BLOCK, None)
                if kept is not None:  # the rest of its block is loose until packed again
                    for prompt in unpack(kept[1]):
                        if prompt.id != prompt_id:
                            self._loose[prompt.id] = prompt

    def pack_closed(self) -> None:
        """Pack every block whose prompts have all closed and that takes no new id."""
        by_block: dict[int, list[Prompt]] = {}
        for prompt_id, prompt in self._loose.items():
            by_block.setdefault(prompt_id // BLOCK, []).append(prompt)
        last = self._next_id // BLOCK  # the block new ids land in
        for block, prompts in by_block.items():
            if block >= last or any(p.state is PromptState.PENDING for p in prompts):
                continue
            prompts.sort(key=lambda p: p.id)
            self._packed[block] = (len(prompts), pack(prompts))
            for prompt in prompts:
                del self._loose[prompt.id]
        self._pack_at = len(self._loose) + self._pack_every
