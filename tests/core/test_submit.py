"""Submitting tasks: the concurrency limit, FIFO promotion and the over-commit on resume."""

from __future__ import annotations

import pytest

from core.errors import BadRequest, InvalidState, UnknownAgent, UnknownTask
from core.model import TaskChanged, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle, until


def starts(recorder: Recorder) -> list[int]:
    """Task ids in the order they went from queued to in progress."""
    seen: dict[int, TaskStatus] = {}
    out = []
    for event in recorder.events:
        task = getattr(event.body, "task", None)
        if task is None:
            continue
        if (
            isinstance(event.body, TaskChanged)
            and seen.get(task.id) is TaskStatus.QUEUED
            and task.status is TaskStatus.IN_PROGRESS
        ):
            out.append(task.id)
        seen[task.id] = task.status
    return out


async def test_submit_under_the_limit_runs_at_once(registry: Registry, puppet: Puppet) -> None:
    task = registry.submit("puppet", "first")
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.started_at is not None
    await until(lambda: task.id in puppet.started, what="the agent to start")
    assert registry.running == 1


async def test_submit_over_the_limit_queues(registry: Registry, puppet: Puppet) -> None:
    a, b, c = (registry.submit("puppet", f"t{i}") for i in range(3))
    await settle(registry, puppet)
    assert [a.status, b.status, c.status] == [TaskStatus.IN_PROGRESS] * 2 + [TaskStatus.QUEUED]
    assert registry.get(c.id).started_at is None
    assert c.id not in puppet.started
    assert registry.running == 2


async def test_promotion_is_fifo(registry: Registry, puppet: Puppet, recorder: Recorder) -> None:
    ids = [registry.submit("puppet", f"t{i}").id for i in range(6)]
    await settle(registry, puppet)
    # Finish out of order: the slot goes to the oldest queued task each time.
    for task_id in (ids[1], ids[0], ids[3], ids[2]):
        puppet.finish(task_id)
        await registry.join(task_id)
        await settle(registry, puppet)
    assert starts(recorder) == ids
    assert puppet.started == ids


async def test_limit_is_respected_at_every_event(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    ids = [registry.submit("puppet", f"t{i}").id for i in range(8)]
    await settle(registry, puppet)
    peak = 0
    while True:
        live = [t for t in registry.list(limit=None) if not t.status.is_ended]
        if not live:
            break
        peak = max(peak, registry.running)
        for task in live:
            if task.status is TaskStatus.IN_PROGRESS:
                puppet.finish(task.id)
        await settle(registry, puppet)
    assert peak == registry.max_concurrent
    assert sorted(puppet.started) == ids
    recorder.assert_clean()
    assert not recorder.overcommitted


async def test_blocked_task_releases_its_slot(registry: Registry, puppet: Puppet) -> None:
    a, _, c = (registry.submit("puppet", f"t{i}").id for i in range(3))
    await settle(registry, puppet)
    puppet.run(a, lambda ctx: ctx.ask("Go on?"))
    await until(lambda: registry.get(a).status is TaskStatus.BLOCKED)
    assert registry.get(c).status is TaskStatus.IN_PROGRESS
    assert registry.running == 2
    await until(lambda: c in puppet.started)


async def test_resume_overcommits_then_queue_waits_below_limit(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    """The documented behaviour: a resumed task runs at once even past the limit,
    and no queued task starts until the count is below the limit again."""
    a, b, c = (registry.submit("puppet", f"t{i}").id for i in range(3))
    await settle(registry, puppet)
    reply = puppet.run(a, lambda ctx: ctx.ask("Go on?"))
    await until(lambda: registry.get(a).status is TaskStatus.BLOCKED)
    d = registry.submit("puppet", "t3").id
    prompt = registry.pending_prompts()[0]

    registry.answer(prompt.id, "approve")
    assert await reply == "approve"
    assert registry.get(a).status is TaskStatus.IN_PROGRESS
    assert registry.running == 3
    assert recorder.overcommitted

    puppet.finish(b)
    await registry.join(b)
    assert registry.running == 2
    assert registry.get(d).status is TaskStatus.QUEUED, "started while at the limit"

    puppet.finish(c)
    await registry.join(c)
    assert registry.get(d).status is TaskStatus.IN_PROGRESS
    await settle(registry, puppet)
    recorder.assert_clean()


async def test_submit_refuses_unknown_agent_and_ended_parent(
    registry: Registry, puppet: Puppet
) -> None:
    with pytest.raises(UnknownAgent):
        registry.submit("nobody", "x")
    with pytest.raises(UnknownTask):
        registry.submit("puppet", "x", parent_id=99)
    with pytest.raises(BadRequest):
        registry.submit("puppet", "x", timeout=0)
    parent = registry.submit("puppet", "parent").id
    await settle(registry, puppet)
    puppet.finish(parent)
    await registry.join(parent)
    with pytest.raises(InvalidState):
        registry.submit("puppet", "late child", parent_id=parent)
    assert len(registry) == 1


async def test_submit_and_open_refuse_an_empty_description(registry: Registry) -> None:
    """A blank description is refused before any task exists (no stray task to clean up)."""
    with pytest.raises(BadRequest, match="description"):
        registry.submit("puppet", "  ")
    with pytest.raises(BadRequest, match="description"):
        registry.open_external("")
    assert len(registry) == 0 and registry.seq == 0


def test_a_non_positive_default_timeout_is_refused() -> None:
    """0 or less would end every task at once; `None` is how to say "no timeout"."""
    for bad in (0, -1.0):
        with pytest.raises(BadRequest, match="default_timeout"):
            Registry(default_timeout=bad)
    assert Registry(default_timeout=None).default_timeout is None
