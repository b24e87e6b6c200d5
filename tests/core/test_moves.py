"""The table of a task's moves: every allowed move happens, any other is refused unchanged."""

from __future__ import annotations

import itertools

import pytest

from core.clock import ManualClock
from core.lifecycle import MOVES, IllegalMove, Step, move
from core.model import Question, Task, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle, until


@pytest.mark.parametrize(("status", "step"), list(itertools.product(TaskStatus, Step)))
def test_every_pair_of_status_and_step_follows_the_table(status: TaskStatus, step: Step) -> None:
    task = Task(id=7, agent="a", description="d", status=status)
    if (status, step) in MOVES:
        assert move(task, step) is MOVES[status, step] is task.status
        return
    before = Task(id=7, agent="a", description="d", status=status)
    with pytest.raises(IllegalMove, match=f"task 7 is {status.value}: cannot {step.value}"):
        move(task, step)
    assert task == before


def test_ended_tasks_never_move() -> None:
    assert not [key for key in MOVES if key[0].is_ended]


def moves_seen(recorder: Recorder) -> set[tuple[TaskStatus, TaskStatus]]:
    """(before, after) of every status change the events showed."""
    last: dict[int, TaskStatus] = {}
    seen = set()
    for event in recorder.events:
        task = getattr(event.body, "task", None)
        if task is None:
            continue
        if task.id in last and last[task.id] is not task.status:
            seen.add((last[task.id], task.status))
        last[task.id] = task.status
    return seen


async def test_the_registry_makes_every_move_of_the_table(
    registry: Registry, puppet: Puppet, recorder: Recorder, clock: ManualClock
) -> None:
    runs, asks, waits = (registry.submit("puppet", name).id for name in ("runs", "asks", "waits"))
    await settle(registry, puppet)  # runs, asks: queued -> in progress; waits: still queued
    registry.abort(waits)  # queued -> failed
    reply = puppet.run(asks, lambda ctx: ctx.ask(Question(text="Go?")))
    await until(lambda: registry.get(asks).blocked_on is not None, what="the question")
    registry.answer(registry.get(asks).blocked_on.prompt_id, "approve")  # blocked -> in progress
    assert await reply == "approve"
    puppet.finish(runs)  # in progress -> finished
    await registry.join(runs)
    registry.abort(asks)  # in progress -> failed
    asker = registry.open_external("ci")
    registry.open_prompt(asker.id, Question(text="Ship?"))  # in progress -> blocked
    registry.finish(asker.id)  # blocked -> finished
    stuck = registry.open_external("ci")
    registry.open_prompt(stuck.id, "Ship?", choices=["yes", "no"])
    clock.advance(registry.get(stuck.id).lease or 0)  # blocked -> failed (lost)
    await settle(registry, puppet)
    table = {(before, after) for (before, _), after in MOVES.items()}
    assert moves_seen(recorder) == table


async def test_an_illegal_move_inside_the_registry_changes_nothing(
    registry: Registry, recorder: Recorder
) -> None:
    """Public calls refuse such moves with a readable error first; the table is the backstop."""
    task = registry.open_external("ci")
    registry.finish(task.id, "done")
    seq, before = registry.seq, registry.get(task.id)
    with pytest.raises(IllegalMove, match="finished: cannot fail"):
        registry._end(task.id, Step.FAIL, error="late", reason=None)
    assert registry.seq == seq and registry.get(task.id) == before
