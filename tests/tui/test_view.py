"""TreeView folds and unfolds by splicing rows; the result must be the rows a rebuild gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.mirror import Mirror
from core.model import Snapshot, Task, TaskStatus
from tui.view import TreeView


def _mirror(parents: list[int | None]) -> Mirror:
    """Task i + 1 has parent parents[i] (an earlier task, or None for a root)."""
    tasks = [
        Task(id=i + 1, agent="demo", description=f"task {i + 1}", parent_id=parent,
             status=TaskStatus.FINISHED if i % 3 == 0 else TaskStatus.IN_PROGRESS)
        for i, parent in enumerate(parents)
    ]
    mirror = Mirror()
    mirror.load(Snapshot(epoch=1, seq=1, tasks=tasks, prompts=[]))
    return mirror


@st.composite
def trees_and_folds(draw: st.DrawFn) -> tuple[list[int | None], list[int], bool]:
    size = draw(st.integers(1, 40))
    parents: list[int | None] = [None]
    for i in range(1, size):
        parents.append(draw(st.one_of(st.none(), st.integers(1, i))))
    toggles = draw(st.lists(st.integers(1, size), max_size=12))
    return parents, toggles, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(trees_and_folds())
def test_fold_and_unfold_give_the_rows_of_a_rebuild(case: tuple[list[int | None], list[int], bool]) -> None:
    """Whatever is folded and unfolded, in any order, rows, guides and the index match a rebuild."""
    parents, toggles, hide_finished = case
    view = TreeView(_mirror(parents))
    view.hide_finished = hide_finished
    view.reset()
    for task_id in toggles:
        if task_id in view.collapsed:
            view.unfold(task_id)
        else:
            view.fold(task_id)
        fresh = TreeView(view.mirror)
        fresh.hide_finished = hide_finished
        fresh.collapsed = set(view.collapsed)
        fresh.rebuild()
        assert view.rows == fresh.rows
        assert view.index == fresh.index


def test_folding_a_root_hides_its_subtree_and_unfolding_restores_it() -> None:
    """The rows a person sees: a folded root shows alone, with its siblings after it."""
    view = TreeView(_mirror([None, 1, 2, 1, None, 5]))
    view.reset()
    assert [r.task_id for r in view.rows] == [1, 2, 3, 4, 5, 6]
    view.fold(1)
    assert [r.task_id for r in view.rows] == [1, 5, 6]
    assert view.rows[0].collapsed
    assert view.index == {1: 0, 5: 1, 6: 2}
    view.unfold(1)
    assert [(r.task_id, r.guide) for r in view.rows] == [
        (1, ""), (2, "├─"), (3, "│ └─"), (4, "└─"), (5, ""), (6, "└─"),
    ]
