"""TreeView folds and unfolds by splicing rows; the result must be the rows a rebuild gives."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.mirror import Mirror
from core.model import Event, Snapshot, Task, TaskChanged, TaskCreated, TasksEvicted, TaskStatus
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
def trees_and_folds(draw: st.DrawFn) -> tuple[list[int | None], list[int], list[int], bool]:
    size = draw(st.integers(1, 40))
    parents: list[int | None] = [None]
    for i in range(1, size):
        parents.append(draw(st.one_of(st.none(), st.integers(1, i))))
    toggles = draw(st.lists(st.integers(1, size), max_size=12))
    peeks = draw(st.lists(st.integers(0, size), min_size=len(toggles), max_size=len(toggles)))
    return parents, toggles, peeks, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(trees_and_folds())
@example(([None, 1, 2, 2], [2, 1, 2], [0, 0, 0], False))  # a fold inside a fold, then out
def test_fold_and_unfold_give_the_rows_of_a_rebuild(
    case: tuple[list[int | None], list[int], list[int], bool],
) -> None:
    """Whatever is folded and unfolded, in any order, rows, guides and the index match a
    rebuild, however far the rows were read before (they are built as they are read)."""
    parents, toggles, peeks, hide_finished = case
    view = TreeView(_mirror(parents))
    view.hide_finished = hide_finished
    view.reset()
    for task_id, peek in zip(toggles, peeks, strict=True):
        if peek < len(view.rows):
            view.rows[peek]  # build this far only
        if task_id in view.collapsed:
            view.unfold(task_id)
        else:
            view.fold(task_id)
        fresh = TreeView(view.mirror)
        fresh.hide_finished = hide_finished
        fresh.collapsed = set(view.collapsed)
        fresh.rebuild()
        counted = len(fresh.rows)
        assert counted == len(list(fresh.rows))  # the count without walking is the walk's
        assert len(view.rows) == counted
        assert view.rows == fresh.rows
        assert view.index == fresh.index


def test_rows_are_built_only_as_far_as_they_are_read() -> None:
    """A start builds no row; reading the first screen builds that screen, not the tree."""
    view = TreeView(_mirror([None if i % 10 == 0 else i - i % 10 + 1 for i in range(10_000)]))
    view.reset()
    assert len(view.rows) == 10_000
    assert view.rows.built_position(1) is None
    assert [r.task_id for r in view.rows[:3]] == [1, 2, 3]
    assert view.rows.built_position(3) == 2
    assert view.rows.built_position(41) is None
    assert view.index[9_991] == 9_990  # a far task: the walk goes on to it
    assert view.rows[-1].task_id == 10_000


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


def _event(mirror: Mirror, body: TaskCreated | TaskChanged | TasksEvicted) -> None:
    mirror.apply(Event(epoch=1, seq=mirror.seq + 1, ts=0.0, body=body))


def _subtree_sums(view: TreeView) -> dict[int, int]:
    tasks = view.mirror.tasks
    return {i: sum(tasks[j].tokens for j in view.mirror.subtree_ids(i)) for i in tasks}


def test_subtree_tokens_read_while_the_mirror_is_ahead_are_not_counted_twice() -> None:
    """The mirror takes events as they come, the view at the next frame: a total read in
    between (a key redraws a row) must still come out right once the frame folds them in."""
    mirror = _mirror([None, 1, 2, None])
    view = TreeView(mirror)
    view.reset()
    assert view.subtree.get(1) == 0
    _event(mirror, TaskChanged(task=Task(id=3, agent="demo", description="task 3", parent_id=2,
                                         prompt_tokens=100, completion_tokens=20)))
    _event(mirror, TaskCreated(task=Task(id=5, agent="demo", description="task 5", parent_id=2,
                                         prompt_tokens=7)))
    assert view.subtree.get(2) in (0, 127)  # read before the frame: old or new, never more
    view.apply([3, 5])
    assert {i: view.subtree.get(i) for i in mirror.tasks} == _subtree_sums(view)
    assert view.total_tokens == 127
    assert [r.task_id for r in view.rows] == [1, 2, 3, 5, 4]
    _event(mirror, TasksEvicted(task_ids=[2, 3]))
    view.apply([2, 3])
    assert {i: view.subtree.get(i) for i in mirror.tasks} == _subtree_sums(view)
    assert [r.task_id for r in view.rows] == [1, 4, 5]  # #5 lost its parent: a root
    assert len(view.rows) == 3 and view.counts[TaskStatus.IN_PROGRESS] + view.counts[
        TaskStatus.FINISHED] + view.counts[TaskStatus.QUEUED] == 3


def test_rows_read_between_an_eviction_and_its_frame_end_early_without_error() -> None:
    """The mirror drops an evicted task at once; until the frame folds that in, the rows
    still count it: reading them ends a row early instead of failing."""
    mirror = _mirror([None, 1, 1, None])
    view = TreeView(mirror)
    view.reset()
    assert len(view.rows) == 4
    _event(mirror, TasksEvicted(task_ids=[3]))
    assert [view.rows.at(i) is None for i in range(4)] == [False, False, False, True]
    assert len(view.rows) == 3 == len(list(view.rows))
    view.apply([3])
    assert [r.task_id for r in view.rows] == [1, 2, 4]


def test_a_filtered_orphan_counts_one_row() -> None:
    """A task whose parent is gone shows as a root, and a filter that keeps it counts it
    once (not its missing parent too)."""
    tasks = [Task(id=1, agent="demo", description="kept"),
             Task(id=3, agent="demo", description="orphan", parent_id=2)]
    mirror = Mirror()
    mirror.load(Snapshot(epoch=1, seq=1, tasks=tasks, prompts=[]))
    view = TreeView(mirror)
    view.reset()
    assert [r.task_id for r in view.rows] == [1, 3]
    view.filter_text = "orphan"
    view.rebuild()
    assert len(view.rows) == 1
    assert [r.task_id for r in view.rows] == [3]


def test_a_new_task_revealed_with_its_new_parent_sits_under_it() -> None:
    """`b` or the inbox reveals an asking sub-task before the frame folds it in; its
    parent, created in the same frame, must come with it, not leave it a root."""
    mirror = _mirror([None])
    view = TreeView(mirror)
    view.reset()
    list(view.rows)
    _event(mirror, TaskCreated(task=Task(id=2, agent="demo", description="sub", parent_id=1)))
    _event(mirror, TaskCreated(task=Task(id=3, agent="demo", description="subsub", parent_id=2)))
    view.reveal([3])
    assert [(r.task_id, r.depth) for r in view.rows] == [(1, 0), (2, 1), (3, 2)]
    view.apply([2, 3])  # the frame
    _event(mirror, TaskCreated(task=Task(id=4, agent="demo", description="new root")))
    view.apply([4])
    assert [(r.task_id, r.depth, r.guide) for r in view.rows] == [
        (1, 0, ""), (2, 1, "└─"), (3, 2, "  └─"), (4, 0, "")]
    assert dict(view.index) == {1: 0, 2: 1, 3: 2, 4: 3}


@st.composite
def growth(draw: st.DrawFn) -> tuple[list[int | None], list[tuple[str, int, int]]]:
    size = draw(st.integers(1, 20))
    parents: list[int | None] = [None]
    for i in range(1, size):
        parents.append(draw(st.one_of(st.none(), st.integers(1, i))))
    steps = draw(st.lists(st.tuples(st.sampled_from(["new", "new", "toggle"]),
                                    st.integers(0, 40), st.integers(0, 40)), max_size=15))
    return parents, steps


@settings(max_examples=150, deadline=None)
@given(growth())
@example(([None, 1], [("toggle", 1, 40), ("new", 0, 40)]))  # a root after the walk ended
def test_new_tasks_give_the_rows_of_a_rebuild(case: tuple[list[int | None],
                                                          list[tuple[str, int, int]]]) -> None:
    """Tasks created under any task (folded, unfolded, read or not yet) or as roots, in
    batches, give the rows, guides and index a rebuild gives."""
    parents, steps = case
    mirror = _mirror(parents)
    view = TreeView(mirror)
    view.reset()
    batch: list[int] = []
    for kind, pick, peek in steps:
        if peek < len(view.rows):
            view.rows[peek]  # build this far only
        ids = sorted(mirror.tasks)
        if kind == "new":
            new_id = ids[-1] + 1
            parent = None if pick % 4 == 0 else ids[pick % len(ids)]
            _event(mirror, TaskCreated(task=Task(id=new_id, agent="demo",
                                                 description=f"task {new_id}", parent_id=parent)))
            batch.append(new_id)
            if pick % 3:
                continue  # folded in with the next ones, as a frame does
        else:
            task_id = ids[pick % len(ids)]
            if task_id in view.collapsed:
                view.unfold(task_id)
            else:
                view.fold(task_id)
        view.apply(batch)
        batch = []
        fresh = TreeView(mirror)
        fresh.collapsed = set(view.collapsed)
        fresh.rebuild()
        assert len(view.rows) == len(fresh.rows)
        assert view.rows == fresh.rows
        assert view.index == fresh.index
