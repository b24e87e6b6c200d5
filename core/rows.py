"""The daemon's compact snapshot (protocol 2): each task encoded as a row, and the rows of
ended tasks kept, since an ended task never changes."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from core import protocol as p
from core.model import Prompt, Task

_ENCODER = msgspec.msgpack.Encoder()


def encode_row(task: Task) -> msgspec.Raw:
    """The task's row: its fields' values as a MessagePack array, in `Task`'s order.

    The same bytes as encoding a `TaskRow`, without building one: a tuple of the values
    encodes as that array.
    """
    return msgspec.Raw(_ENCODER.encode(msgspec.structs.astuple(task)))


class RowCache:
    """Encoded rows of ended tasks by id, so a snapshot only copies their bytes.

    Encoding 100,000 tasks as maps cost the daemon 45-70 ms of each late join; splicing
    kept rows costs a few (docs/BENCHMARKS.md, late join). A row is about 140 bytes
    where the Task it stands for takes about 500: the cache adds well under 1 KiB per
    finished task. Rows are made when a snapshot first needs them; live tasks are
    encoded afresh every time, since they still change.
    """

    def __init__(self) -> None:
        self._ended: dict[int, msgspec.Raw] = {}

    def __len__(self) -> int:
        return len(self._ended)

    def rows(self, tasks: Mapping[int, Task]) -> list[msgspec.Raw]:
        """Every task's row, in the mapping's order.

        Set operations and `map` over the keys run in C: a snapshot of 100,000 ended
        tasks does no Python-level step per task once their rows are kept.
        """
        ended = self._ended
        for gone in ended.keys() - tasks.keys():  # evicted since the last snapshot
            del ended[gone]
        live: list[int] = []
        for task_id in tasks.keys() - ended.keys():
            task = tasks[task_id]
            ended[task_id] = encode_row(task)
            if not task.status.is_ended:
                live.append(task_id)
        rows = list(map(ended.__getitem__, tasks))
        for task_id in live:
            del ended[task_id]
        return rows

    def snapshot(self, tasks: Mapping[int, Task], tree: tuple[list[int], dict[int, list[int]]],
                 *, epoch: int, seq: int, prompts: list[Prompt]) -> p.CompactSnapshot:
        """The compact snapshot of `tasks` (in id order) and their tree as of `seq`."""
        roots, children = tree
        return p.CompactSnapshot(epoch=epoch, seq=seq,
                                 tasks=self.rows(tasks),  # type: ignore[arg-type]
                                 prompts=prompts, roots=roots, children=children)
