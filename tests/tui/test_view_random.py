"""TreeView against a plain reference: any mix of new tasks, evictions, status changes,
folds, filters and reveals (as `b` and the inbox do between frames) gives the rows,
index and subtree sums a from-scratch walk of the same tasks gives."""

from __future__ import annotations

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.mirror import Mirror
from core.model import Event, Snapshot, Task, TaskChanged, TaskCreated, TasksEvicted, TaskStatus
from tui.view import TreeView

Row = tuple[int, int, str, bool, bool]


def _event(mirror: Mirror, body: TaskCreated | TaskChanged | TasksEvicted) -> None:
    mirror.apply(Event(epoch=1, seq=mirror.seq + 1, ts=0.0, body=body))


def _reference_rows(view: TreeView) -> list[Row]:
    """(id, depth, guide, has children, folded) of every row, walked from scratch."""
    tasks = view._known
    shown: set[int] | None = None
    if view.filter_text or view.hide_finished:
        shown = set()
        for i in sorted(tasks, reverse=True):
            task = tasks[i]
            if i in shown or (not (view.hide_finished and task.status.is_ended)
                              and view.matches(task)):
                shown.add(i)
                if task.parent_id in tasks:
                    shown.add(task.parent_id)

    def visible(ids: list[int]) -> list[int]:
        return [i for i in ids if i in tasks and (shown is None or i in shown)]

    kids: dict[int | None, list[int]] = {}
    for i in sorted(tasks):
        kids.setdefault(tasks[i].parent_id, []).append(i)
    roots = visible(sorted(i for i, t in tasks.items()
                           if t.parent_id is None or t.parent_id not in tasks))
    rows: list[Row] = []
    stack = [(r, 0, "", n == len(roots) - 1) for n, r in enumerate(roots)][::-1]
    while stack:
        i, depth, lead, last = stack.pop()
        children = visible(kids.get(i, []))
        folded = i in view.collapsed and bool(children)
        rows.append((i, depth, "" if depth == 0 else lead + ("└─" if last else "├─"),
                     bool(children), folded))
        if folded:
            continue
        below = "" if depth == 0 else lead + ("  " if last else "│ ")
        for n in range(len(children) - 1, -1, -1):
            stack.append((children[n], depth + 1, below, n == len(children) - 1))
    return rows


def _reference_sum(known: dict[int, Task], task_id: int) -> int:
    return known[task_id].tokens + sum(_reference_sum(known, j) for j in known
                                       if known[j].parent_id == task_id)


STEPS = st.lists(st.tuples(st.sampled_from(["new", "new", "toggle", "evict", "status", "frame",
                                            "filter", "hide", "peek", "reveal"]),
                           st.integers(0, 60), st.integers(0, 60)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 25), STEPS)
@example(1, [("new", 1, 0), ("new", 1, 0), ("reveal", 0, 0),  # a new child of a new task,
             ("new", 0, 0), ("frame", 0, 0)])                 # then a new root
@example(1, [("new", 0, 0), ("new", 1, 0), ("evict", 1, 0),  # a new task's new parent goes,
             ("hide", 0, 0)])                                # then a rebuild
def test_any_mix_of_changes_gives_the_rows_of_a_plain_walk(
        size: int, steps: list[tuple[str, int, int]]) -> None:
    mirror = Mirror()
    mirror.load(Snapshot(epoch=1, seq=1, prompts=[], tasks=[
        Task(id=i, agent="d", description=f"t{i}",
             parent_id=None if i == 1 else (i // 2 if i % 3 else None))
        for i in range(1, size + 1)]))
    view = TreeView(mirror)
    view.reset()
    batch: list[int] = []  # changed in the mirror, not yet folded in by a frame
    next_id = size + 1
    for kind, a, b in steps:
        ids = sorted(mirror.tasks)
        if kind == "new":
            parent = None if (a % 4 == 0 or not ids) else ids[a % len(ids)]
            _event(mirror, TaskCreated(task=Task(id=next_id, agent="d", description=f"t{next_id}",
                                                 parent_id=parent, prompt_tokens=b)))
            batch.append(next_id)
            next_id += 1
        elif kind == "evict" and ids:
            gone = ids[a % len(ids)]
            _event(mirror, TasksEvicted(task_ids=[gone]))
            batch.append(gone)
        elif kind == "status" and ids:
            task = mirror.tasks[ids[a % len(ids)]]
            status = TaskStatus.IN_PROGRESS if task.status.is_ended else TaskStatus.FINISHED
            _event(mirror, TaskChanged(task=msgspec.structs.replace(
                task, status=status, completion_tokens=task.completion_tokens + b)))
            batch.append(task.id)
        elif kind == "toggle":
            known = sorted(view._known)
            if known:
                task_id = known[a % len(known)]
                if task_id in view.collapsed:
                    view.unfold(task_id)
                else:
                    view.fold(task_id)
        elif kind == "filter":
            view.filter_text = "" if view.filter_text else f"t{a % 7}"
            view.rebuild()
        elif kind == "hide":
            view.hide_finished = not view.hide_finished
            view.rebuild()
        elif kind == "peek":
            if b < len(view.rows):
                view.rows.at(b)
            known = sorted(view._known)
            if known:
                view.subtree.get(known[b % len(known)])
        elif kind == "reveal" and ids:
            # Between frames, with the mirror ahead: the newest tasks are the likeliest asked.
            view.reveal([ids[-1 - a % len(ids)]])
            if all(i in mirror.tasks for i in batch):  # (rows end early at an eviction
                _check(view, kind)                      # until its frame): drawn at once
        if kind in ("frame", "toggle", "filter", "hide", "reveal"):
            view.apply(batch)
            batch = []
            _check(view, kind)


def _check(view: TreeView, kind: str) -> None:
    want = _reference_rows(view)
    got = [(r.task_id, r.depth, r.guide, r.has_children, r.collapsed) for r in view.rows]
    assert got == want, kind
    assert len(view.rows) == len(want)
    assert dict(view.index) == {row[0]: n for n, row in enumerate(want)}
    for i in view._known:
        assert view.subtree.get(i) == _reference_sum(view._known, i), i
