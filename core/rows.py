"""The daemon's compact snapshot (protocol 2): each task encoded as a row, and the rows of
ended tasks kept, packed by blocks of ids, since an ended task never changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import msgspec

from core import protocol as p
from core.model import Event, Prompt, Task, TasksEvicted, Tree
from core.packing import array_header

if TYPE_CHECKING:
    from core.registry import Registry

BLOCK = 64
"""Task ids per block: a block whose tasks have all ended is kept as one string of rows."""

PENDING_LIMIT = 1024
"""Rows kept one by one before the blocks they complete are packed."""

_ENCODER = msgspec.msgpack.Encoder()


def encode_row(task: Task) -> bytes:
    """The task's row: its fields' values as a MessagePack array, in `Task`'s order.

    The same bytes as encoding a `TaskRow`, without building one: a tuple of the values
    encodes as that array.
    """
    return _ENCODER.encode(msgspec.structs.astuple(task))


class RowCache:
    """The encoded rows of ended tasks, so a snapshot copies bytes instead of encoding.

    Encoding 100,000 tasks as maps cost the daemon 43-80 ms of each late join; joining
    kept rows costs 2 (docs/BENCHMARKS.md, late join). An ended task's row is made
    as it ends (`follow`: one ~1 µs encode per task, not 117 ms at the first join) and
    kept alone until the block of `BLOCK` ids around it has ended and no new id can
    land in it; then the block is packed into one string. Rows one by one cost ~330 B a
    task (string, dict slot, allocator slack), packed ~125 B: a finished task held takes
    649 B with its row, not 860 B. An eviction unpacks the blocks it touches.

    A snapshot walks the blocks in id order: a packed one is one string, an open one is
    built from its tasks, live ones encoded afresh. Without `follow` (tasks restored from
    a journal came without events) the rows are made at the first snapshot.
    """

    def __init__(self, *, pack_every: int = PENDING_LIMIT) -> None:
        self._pack_every = pack_every
        self._packed: dict[int, tuple[int, bytes]] = {}
        """Block number -> (tasks in it, their rows in id order), all ended."""
        self._rows: dict[int, bytes] = {}
        """Rows of ended tasks in blocks not packed yet, by task id."""
        self._pending: set[int] = set()
        """Blocks with rows in `_rows`: packed once all their tasks have ended."""
        self._tasks: Mapping[int, Task] | None = None
        self.resets = 0
        """Snapshots that found the kept rows out of step and built all afresh (0 while
        following the registry)."""
        self._pack_at = pack_every
        """Rows kept one by one at which to try packing: raised past what a try leaves,
        so blocks held open by a live task are not scanned at every end."""

    def __len__(self) -> int:
        """Rows kept (packed or not)."""
        return len(self._rows) + sum(count for count, _ in self._packed.values())

    def follow(self, registry: Registry) -> Callable[[], None]:
        """Keep up with the registry's events; returns what stops it."""
        self._tasks = registry.tasks_by_id()
        return registry.listen(self._on_event)

    def _on_event(self, event: Event) -> None:
        body = event.body
        if isinstance(body, TasksEvicted):
            for task_id in body.task_ids:
                self._rows.pop(task_id, None)
                block = task_id // BLOCK
                if self._packed.pop(block, None) is not None:
                    self._pending.add(block)  # packed again from the tasks left in it
            return
        task = getattr(body, "task", None)  # a later kind of event may carry none
        if task is not None and task.status.is_ended:
            self._rows[task.id] = encode_row(task)
            self._pending.add(task.id // BLOCK)
            if len(self._rows) >= self._pack_at and self._tasks is not None:
                self._pack_pending(self._tasks)
                self._pack_at = len(self._rows) + self._pack_every

    def rows(self, tasks: Mapping[int, Task]) -> msgspec.Raw:
        """The MessagePack array of every task's row, in id order.

        `tasks` must be in id order (the registry's are). Tasks that changed without an
        event the cache saw are caught by a count, and everything is built afresh.
        """
        if not tasks:
            return msgspec.Raw(array_header(0))
        parts, count = self._walk(tasks)
        if count != len(tasks):  # out of step: start over from the tasks
            self.resets += 1
            self._packed.clear()
            self._rows.clear()
            self._pending.clear()
            parts, count = self._walk(tasks)
        self._pack_at = len(self._rows) + self._pack_every
        return msgspec.Raw(b"".join([array_header(count), *parts]))

    def _walk(self, tasks: Mapping[int, Task]) -> tuple[list[bytes], int]:
        """Every block's rows from the first task's to the last's, and how many rows."""
        first, last = next(iter(tasks)) // BLOCK, next(reversed(tasks.keys())) // BLOCK
        packed = self._packed
        if len(packed) > last - first + 1:
            for block in [b for b in packed if b < first]:  # evicted long ago
                del packed[block]
        parts: list[bytes] = []
        count = 0
        for block in range(first, last + 1):
            kept = packed.get(block)
            if kept is None:
                kept = self._block(block, tasks, closed=block < last)
            count += kept[0]
            parts.append(kept[1])
        return parts, count

    def _block(self, block: int, tasks: Mapping[int, Task], *, closed: bool
               ) -> tuple[int, bytes]:
        """The rows of one block's tasks; packed when all have ended and it is `closed`."""
        kept = self._rows
        rows: list[bytes] = []
        ended = True
        start = block * BLOCK
        for task_id in range(start, start + BLOCK):
            task = tasks.get(task_id)
            if task is None:
                continue
            row = kept.get(task_id)
            if row is None:
                row = encode_row(task)
                if task.status.is_ended:
                    kept[task_id] = row
                else:
                    ended = False
            rows.append(row)
        out = (len(rows), b"".join(rows))
        if ended and closed:
            self._packed[block] = out
            for task_id in range(start, start + BLOCK):
                kept.pop(task_id, None)
            self._pending.discard(block)
        elif ended:
            self._pending.add(block)
        return out

    def _pack_pending(self, tasks: Mapping[int, Task]) -> None:
        """Pack the blocks with rows kept one by one whose tasks have all ended."""
        if not tasks:
            return
        last = next(reversed(tasks.keys())) // BLOCK
        for block in sorted(self._pending):
            if block in self._packed:
                self._pending.discard(block)
            elif block < last and all(
                t.status.is_ended for i in range(block * BLOCK, (block + 1) * BLOCK)
                if (t := tasks.get(i)) is not None
            ):
                self._block(block, tasks, closed=True)

    def snapshot(self, tasks: Mapping[int, Task], tree: Tree, *, epoch: int, seq: int,
                 prompts: list[Prompt]) -> p.CompactSnapshot:
        """The compact snapshot of `tasks` (in id order) and their tree as of `seq`."""
        return p.CompactSnapshot(epoch=epoch, seq=seq,
                                 tasks=self.rows(tasks),  # type: ignore[arg-type]
                                 prompts=prompts, roots=tree.roots, children=tree.children)
