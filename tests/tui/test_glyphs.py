"""One look per task state: the dashboard's rows and the CLI's lines draw the same glyphs."""

from __future__ import annotations

from core import cli
from core.glyphs import LOOKS, STATUS_GLYPHS, Shown, glyph_of, shown_of
from core.model import BlockedReason, EndReason, Task, TaskStatus
from tui.widgets.task_tree import TaskTree


def task(status: TaskStatus, **fields: object) -> Task:
    return Task(id=1, agent="demo", description="d", status=status,
                **fields)  # type: ignore[arg-type]


def test_each_state_has_its_own_look_and_a_task_shows_the_state_it_is_in() -> None:
    cases = {
        Shown.QUEUED: task(TaskStatus.QUEUED),
        Shown.RUNNING: task(TaskStatus.IN_PROGRESS),
        Shown.ASKING: task(TaskStatus.BLOCKED, blocked_reason=BlockedReason.PROMPT),
        Shown.WAITING: task(TaskStatus.BLOCKED, blocked_reason=BlockedReason.SUBTASKS),
        Shown.FINISHED: task(TaskStatus.FINISHED),
        Shown.FAILED: task(TaskStatus.FAILED, end_reason=EndReason.TIMEOUT),
        Shown.ABORTED: task(TaskStatus.FAILED, end_reason=EndReason.ABORTED),
    }
    assert set(cases) == set(Shown) == set(LOOKS)
    for shown, one in cases.items():
        assert shown_of(one) is shown
        assert glyph_of(one) == LOOKS[shown].glyph
    assert len({LOOKS[s].glyph for s in Shown if s is not Shown.ABORTED}) == len(Shown) - 1


def test_the_cli_prints_the_dashboards_glyph_for_each_status() -> None:
    for status in TaskStatus:
        blocked = {"blocked_reason": BlockedReason.PROMPT} if status is TaskStatus.BLOCKED else {}
        shown = glyph_of(task(status, **blocked))
        assert cli.STATUS_ICONS[status] == STATUS_GLYPHS[status] == shown
    assert cli.STATUS_ICONS[TaskStatus.IN_PROGRESS] == "▶"


def test_the_cli_tells_waiting_on_sub_tasks_from_asking_as_the_tree_does() -> None:
    """`ls`, `watch` and `show` draw the task's state, not only its bare status."""
    waiting = task(TaskStatus.BLOCKED, blocked_reason=BlockedReason.SUBTASKS)
    asking = task(TaskStatus.BLOCKED, blocked_reason=BlockedReason.PROMPT)
    aborted = task(TaskStatus.FAILED, end_reason=EndReason.ABORTED)
    assert " ◐ blocked " in cli._ls_line(waiting)
    assert " ? blocked " in cli._ls_line(asking)
    assert " ◐ blocked " in cli._watch_line(waiting)
    assert cli._ls_line(aborted).split()[1:3] == [LOOKS[Shown.ABORTED].glyph, "failed"]


def test_the_tree_colours_each_state_from_the_table() -> None:
    css = TaskTree.DEFAULT_CSS
    assert "& > .task-tree--running { color: $primary; text-style: bold; }" in css
    assert "& > .task-tree--waiting { color: $warning 70%; }" in css
    for shown in Shown:
        assert f"task-tree--{shown.value}" in TaskTree.COMPONENT_CLASSES
        assert f".task-tree--{shown.value} {{ color: ${LOOKS[shown].colour}" in css
