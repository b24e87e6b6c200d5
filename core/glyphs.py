"""How a task's state looks: one glyph and colour table for the command line and the dashboard.

Colours are theme colour names, not styles: the dashboard maps each to its theme
(`$primary`, `$warning` ...), so a task reads the same in `taskdeck ls` and in the tree.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from core.model import BlockedReason, EndReason, Task, TaskStatus


class Shown(str, enum.Enum):
    """A task's state as a person reads it: its status, with blocked and failed split by why."""

    QUEUED = "queued"
    """Waiting for a slot."""
    RUNNING = "running"
    """In progress."""
    ASKING = "asking"
    """Blocked on a person's answer: the one state that wants an eye."""
    WAITING = "waiting"
    """Blocked on its own sub-tasks; nobody needs to act."""
    FINISHED = "finished"
    """Ended with a result."""
    FAILED = "failed"
    """Ended without one, by an error, a timeout or a lost reporter."""
    ABORTED = "aborted"
    """Ended because somebody aborted it (or an ancestor): failed, but on purpose."""


class Look(NamedTuple):
    """The glyph and colour of one `Shown` state."""

    glyph: str
    """One cell."""
    colour: str
    """A theme colour name: foreground, primary, warning, success or error."""
    strength: int = 100
    """Percent of the colour: the states that need no eye are dimmer."""
    bold: bool = False


LOOKS: dict[Shown, Look] = {
    Shown.QUEUED: Look("○", "foreground", 50),
    Shown.RUNNING: Look("▶", "primary", bold=True),
    Shown.ASKING: Look("?", "warning", bold=True),
    Shown.WAITING: Look("◐", "warning", 70),
    Shown.FINISHED: Look("✓", "success"),
    Shown.FAILED: Look("✗", "error", bold=True),
    Shown.ABORTED: Look("✗", "error", 70),
}
"""Every state's look; the only place a status glyph or colour is chosen."""

BY_STATUS: dict[TaskStatus, Shown] = {
    TaskStatus.QUEUED: Shown.QUEUED,
    TaskStatus.IN_PROGRESS: Shown.RUNNING,
    TaskStatus.BLOCKED: Shown.ASKING,
    TaskStatus.FINISHED: Shown.FINISHED,
    TaskStatus.FAILED: Shown.FAILED,
}
"""What a bare status shows as, where the reason is not at hand (a blocked task may ask)."""

STATUS_GLYPHS: dict[TaskStatus, str] = {
    status: LOOKS[shown].glyph for status, shown in BY_STATUS.items()
}
"""The glyph of each status alone, for lines that print the status word beside it."""


def shown_of(task: Task) -> Shown:
    """The state a task's row shows: why it is blocked, and whether a failure was an abort."""
    if task.status is TaskStatus.BLOCKED:
        return Shown.ASKING if task.blocked_reason is BlockedReason.PROMPT else Shown.WAITING
    if task.status is TaskStatus.FAILED and task.end_reason is EndReason.ABORTED:
        return Shown.ABORTED
    return BY_STATUS[task.status]


def glyph_of(task: Task) -> str:
    """The one-cell icon of a task's state."""
    return LOOKS[shown_of(task)].glyph
