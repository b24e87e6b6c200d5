"""The daemon's compact snapshot (protocol 2): each task encoded as a row, and the rows of
ended tasks kept, since an ended task never changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from core import protocol as p
from core.model import Event, Prompt, Task, TasksEvicted, Tree

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
    kept rows costs a few (docs/BENCHMARKS.md, late join). A row is about 140 bytes,
    and with its object and dict slot it adds about 300 bytes per ended task held.

    `follow` a registry and a task's row is made as it ends (a microsecond, once) and
    dropped as it is evicted, so the first join after many tasks ended is as fast as
    the next. Tasks the registry restored from a journal, which came without events,
    get their rows at the first snapshot. Live tasks are encoded afresh every time.
    """

    def __init__(self) -> None:
        self._ended: dict[int, msgspec.Raw] = {}
        self._live: dict[int, None] = {}
        """Ids of the live tasks, as the events said (ordered, O(1) removal)."""

    def __len__(self) -> int:
        return len(self._ended)

    def follow(self, listen: Callable[[Callable[[Event], None]], Callable[[], None]]
               ) -> Callable[[], None]:
        """Keep up with a registry's events (`Registry.listen`); returns what stops it."""
        return listen(self._on_event)

    def _on_event(self, event: Event) -> None:
        body = event.body
        if isinstance(body, TasksEvicted):
            for task_id in body.task_ids:
                self._ended.pop(task_id, None)
                self._live.pop(task_id, None)
            return
        task = body.task
        if task.status.is_ended:
            self._live.pop(task.id, None)
            self._ended[task.id] = encode_row(task)
        else:
            self._live[task.id] = None

    def rows(self, tasks: Mapping[int, Task]) -> list[msgspec.Raw]:
        """Every task's row, in the mapping's order.

        Following the registry, only the live tasks are encoded and the rest is one
        `map` in C; otherwise (restored tasks, no `follow`) the rows are reconciled
        with set operations first, also in C.
        """
        if len(self._ended) + len(self._live) != len(tasks):
            self._reconcile(tasks)
        try:
            return self._splice(tasks)
        except KeyError:  # out of step after all: start over from the tasks
            self._reconcile(tasks)
            return self._splice(tasks)

    def _splice(self, tasks: Mapping[int, Task]) -> list[msgspec.Raw]:
        """The rows in the tasks' order, the live ones encoded now and not kept.

        Raises:
            KeyError: the kept rows and live ids are not those of `tasks`.
        """
        ended, live = self._ended, self._live
        try:
            for task_id in live:
                ended[task_id] = encode_row(tasks[task_id])
            return list(map(ended.__getitem__, tasks))
        finally:
            for task_id in live:
                ended.pop(task_id, None)

    def _reconcile(self, tasks: Mapping[int, Task]) -> None:
        """Make the kept rows and live ids those of `tasks`."""
        ended = self._ended
        for gone in ended.keys() - tasks.keys():
            del ended[gone]
        self._live = live = {}
        for task_id in sorted(tasks.keys() - ended.keys()):
            task = tasks[task_id]
            if task.status.is_ended:
                ended[task_id] = encode_row(task)
            else:
                live[task_id] = None

    def snapshot(self, tasks: Mapping[int, Task], tree: Tree, *, epoch: int, seq: int,
                 prompts: list[Prompt]) -> p.CompactSnapshot:
        """The compact snapshot of `tasks` (in id order) and their tree as of `seq`."""
        return p.CompactSnapshot(epoch=epoch, seq=seq,
                                 tasks=self.rows(tasks),  # type: ignore[arg-type]
                                 prompts=prompts, roots=tree.roots, children=tree.children)
