"""The tree's visible rows, made only as far down as something reads them (no Textual).

A tree of 100,000 tasks shows 40 rows at a time. Building a `Row` for every task before
the first frame cost ~0.25 s (plus an index entry each, and a collection walking them);
here the rows are a depth-first walk paused where reading stopped: the first screen costs
its 40 rows, `G` walks to the end once, and a fold or a new task throws away only the rows
after the place it changed. How many rows there are is counted without walking (tasks
shown, less what folds hide), so the scrollbar is right from the first frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

Kids = Callable[[int], list[int]]
"""The children of a task that have rows when it is unfolded, oldest first."""


@dataclass(slots=True)
class Row:
    """One visible line of the tree."""

    task_id: int
    depth: int
    guide: str
    """Tree guide drawn before the icon, e.g. "│  ├─ "."""
    has_children: bool
    collapsed: bool


class Walk:
    """Rows in order, built on demand by a depth-first walk that can stop and resume.

    The walk's stack holds one frame per level: the sibling list, the next position in
    it, the depth and the guide's lead for that level. Rows already built are kept with
    their positions until `restart_at` cuts them.
    """

    def __init__(self, roots: list[int], kids: Kids, collapsed: set[int], total: int,
                 parent_of: Callable[[int], int | None]) -> None:
        self._roots = roots
        self._kids = kids
        self._collapsed = collapsed
        self.total = total
        """How many rows the walk gives in all (counted before walking)."""
        self._parent_of = parent_of
        self.built: list[Row] = []
        self.at: dict[int, int] = {}
        """Position of each built row, by task id."""
        self._stack: list[list] = [[roots, 0, 0, ""]]

    def build_to(self, position: int) -> bool:
        """Build rows up to `position` (inclusive); False if there are not that many."""
        while len(self.built) <= position:
            if not self._step():
                return False
        return True

    def _step(self) -> bool:
        """Build the next row; False at the end (where the count is made exact)."""
        if len(self.built) >= self.total or not self._next():
            self.total = len(self.built)  # a task left the mirror since it was counted
            return False
        return True

    def build_until(self, task_id: int) -> int | None:
        """Build rows until the task's row; its position, or None if it has none."""
        at = self.at.get(task_id)
        while at is None and self._step():
            at = self.at.get(task_id)
        return at

    def _next(self) -> bool:
        stack = self._stack
        while len(stack) > 1 and stack[-1][1] >= len(stack[-1][0]):
            stack.pop()
        frame = stack[-1]  # the roots' frame stays: a root added later is walked on to
        if frame[1] >= len(frame[0]):
            return False
        siblings, pos, depth, lead = frame
        task_id = siblings[pos]
        frame[1] = pos + 1
        last = pos == len(siblings) - 1
        kids = self._kids(task_id)
        collapsed = bool(kids) and task_id in self._collapsed
        self.at[task_id] = len(self.built)
        self.built.append(Row(task_id, depth, "" if depth == 0 else lead + ("└─" if last else "├─"),
                              bool(kids), collapsed))
        if kids and not collapsed:
            stack.append([kids, 0, depth + 1, "" if depth == 0 else lead + ("  " if last else "│ ")])
        return True

    def add_root(self, task_id: int) -> None:
        """A new root, after every other (ids rise); the walk reaches it in turn."""
        self._roots.append(task_id)

    def restart_at(self, position: int, total: int) -> bool:
        """Keep the rows before `position`; the walk goes on from the task whose row was there.

        For a change at or below that task (a fold, an unfold): the rows before it do not
        depend on what is below it.

        Returns:
            False, changing nothing, when the task's place in the tree is gone (evicted
            since its row was built): start a new walk instead.
        """
        row = self.built[position]
        path = [row.task_id]  # the task, then its ancestors up to its root row
        for _ in range(row.depth):
            parent = self._parent_of(path[-1])
            if parent is None or parent not in self.at:
                return False
            path.append(parent)
        path.reverse()
        stack: list[list] = []
        for depth, task_id in enumerate(path):
            siblings = self._roots if depth == 0 else self._kids(path[depth - 1])
            if task_id not in siblings:
                return False
            lead = "" if depth == 0 else self._lead(depth, task_id, row)
            # Levels above the task resume after their ancestor, whose row stays.
            skip = 0 if depth == row.depth else 1
            stack.append([siblings, siblings.index(task_id) + skip, depth, lead])
        for gone in self.built[position:]:
            del self.at[gone.task_id]
        del self.built[position:]
        self._stack = stack
        self.total = total
        return True

    def _lead(self, depth: int, task_id: int, row: Row) -> str:
        """The guide's lead of a level: what the guide of the path's task there starts with."""
        guide = row.guide if depth == row.depth else self.built[self.at[task_id]].guide
        return guide[:-2]


class Rows(Sequence[Row]):
    """The visible rows as a list that builds itself as it is read."""

    def __init__(self, walk: Walk) -> None:
        self._walk = walk

    def __len__(self) -> int:
        return self._walk.total

    @overload
    def __getitem__(self, position: int) -> Row: ...

    @overload
    def __getitem__(self, position: slice) -> list[Row]: ...

    def __getitem__(self, position: int | slice) -> Row | list[Row]:
        walk = self._walk
        if isinstance(position, slice):
            start, stop, _ = position.indices(walk.total)
            walk.build_to(max(start, stop) - 1)
            return walk.built[position]
        if position < 0:
            position += walk.total
        if not 0 <= position < walk.total or not walk.build_to(position):
            raise IndexError(position)
        return walk.built[position]

    def __iter__(self) -> Iterator[Row]:
        position = 0
        walk = self._walk
        while walk.build_to(position):
            yield walk.built[position]
            position += 1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rows | list):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Rows({len(self._walk.built)} of {self._walk.total} built)"

    def at(self, position: int) -> Row | None:
        """The row at `position`, or None past the end: the end can come sooner than
        counted while a task the mirror dropped a moment ago is still counted."""
        walk = self._walk
        if 0 <= position < walk.total and walk.build_to(position):
            return walk.built[position]
        return None

    def built_position(self, task_id: int) -> int | None:
        """The task's row if it is built already; never walks (rows not built were never drawn)."""
        return self._walk.at.get(task_id)


class RowIndex(Mapping[int, int]):
    """Row position by task id, walking as far as the task's row (or none, if it has none)."""

    def __init__(self, walk: Walk, has_row: Callable[[int], bool]) -> None:
        self._walk = walk
        self._has_row = has_row

    def __getitem__(self, task_id: int) -> int:
        at = self._walk.at.get(task_id)
        if at is None and self._has_row(task_id):
            at = self._walk.build_until(task_id)
        if at is None:
            raise KeyError(task_id)
        return at

    def __contains__(self, task_id: object) -> bool:
        if not isinstance(task_id, int):
            return False
        return task_id in self._walk.at or (self._has_row(task_id)
                                            and self._walk.build_until(task_id) is not None)

    def __iter__(self) -> Iterator[int]:
        self._walk.build_to(self._walk.total - 1)
        return iter(list(self._walk.at))

    def __len__(self) -> int:
        return self._walk.total
