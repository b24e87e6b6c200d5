"""A task's life as one table: which event moves which status to which.

`move` is the only place a task's status is assigned, so no code path can invent a
transition: a move missing from `MOVES` raises `IllegalMove` and changes nothing.
"""

from __future__ import annotations

import enum

from core.model import Task, TaskStatus


class Step(str, enum.Enum):
    """What happens to a task."""

    START = "start"
    """It gets a slot (or, external, is opened already running)."""
    BLOCK = "block"
    """It waits on a person's answer or on its sub-tasks, giving its slot back."""
    RESUME = "resume"
    """What it waited on came: an answer, a timeout, its sub-tasks' end."""
    FINISH = "finish"
    """Its agent returned, or its reporter said it finished."""
    FAIL = "fail"
    """Aborted, timed out, lost, errored or cut short by a restart."""


_Q, _RUN, _BLK = TaskStatus.QUEUED, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED

MOVES: dict[tuple[TaskStatus, Step], TaskStatus] = {
    (_Q, Step.START): _RUN,
    (_Q, Step.FAIL): TaskStatus.FAILED,
    (_RUN, Step.BLOCK): _BLK,
    (_RUN, Step.FINISH): TaskStatus.FINISHED,
    (_RUN, Step.FAIL): TaskStatus.FAILED,
    (_BLK, Step.RESUME): _RUN,
    (_BLK, Step.FINISH): TaskStatus.FINISHED,  # an external reporter ends a task mid-question
    (_BLK, Step.FAIL): TaskStatus.FAILED,
}
"""Every allowed move, (status, step) -> new status. Ended tasks never move again."""


class IllegalMove(RuntimeError):
    """A move the table does not allow: a bug in the registry, never a user's mistake."""


def move(task: Task, step: Step) -> TaskStatus:
    """Apply `step` to `task` by the table; returns the new status.

    Raises:
        IllegalMove: the table has no such move; the task is unchanged.
    """
    try:
        status = MOVES[task.status, step]
    except KeyError:
        raise IllegalMove(f"task {task.id} is {task.status.value}: cannot {step.value}") from None
    task.status = status
    return status
