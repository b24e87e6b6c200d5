"""External tasks: work reported by another process, kept alive by a lease."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import InvalidState, UnknownTask
from core.model import EndReason, PromptState, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle


async def test_open_external_runs_at_once_without_a_slot(
    registry: Registry, puppet: Puppet
) -> None:
    for i in range(3):
        registry.submit("puppet", f"t{i}")
    task = registry.open_external("nightly CI", agent="ci", lease=60)
    assert task.status is TaskStatus.IN_PROGRESS and task.external
    assert task.started_at is not None
    assert registry.running == 2, "an external task took an in-process slot"
    await settle(registry, puppet)


async def test_external_task_reports_asks_and_finishes(registry: Registry) -> None:
    task_id = registry.open_external("deploy", agent="ci", lease=60).id
    registry.add_tokens(task_id, 7, 3)
    registry.set_progress(task_id, "building")
    prompt = registry.open_prompt(task_id, "Deploy to prod?")
    assert registry.get(task_id).status is TaskStatus.BLOCKED
    registry.answer(prompt.id, "approve", by="alice")
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    done = registry.finish(task_id, "deployed")
    assert (done.status, done.result, done.tokens, done.progress) == (
        TaskStatus.FINISHED,
        "deployed",
        10,
        None,
    )
    with pytest.raises(InvalidState):
        registry.finish(task_id, "again")
    with pytest.raises(InvalidState):
        registry.heartbeat(task_id)


async def test_external_fail_records_the_error(registry: Registry) -> None:
    task_id = registry.open_external("lint", lease=60).id
    failed = registry.fail(task_id, "3 errors")
    assert (failed.status, failed.error, failed.end_reason) == (
        TaskStatus.FAILED,
        "3 errors",
        EndReason.ERROR,
    )


async def test_finish_and_fail_refuse_in_process_tasks(registry: Registry, puppet: Puppet) -> None:
    task_id = registry.submit("puppet", "in-process").id
    await settle(registry, puppet)
    with pytest.raises(InvalidState):
        registry.finish(task_id, "not yours")
    with pytest.raises(InvalidState):
        registry.fail(task_id, "not yours")
    with pytest.raises(InvalidState):
        registry.heartbeat(task_id)
    with pytest.raises(UnknownTask):
        registry.finish(404)
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS


async def test_lease_lapse_fails_the_task_as_lost(
    registry: Registry, recorder: Recorder
) -> None:
    task_id = registry.open_external("flaky", lease=0.05).id
    prompt = registry.open_prompt(task_id, "Still there?")
    event = await recorder.wait_for(
        lambda e: getattr(e.body, "task", None) is not None and e.body.task.status.is_ended
    )
    task = event.body.task
    assert (task.id, task.status, task.end_reason) == (task_id, TaskStatus.FAILED, EndReason.LOST)
    assert registry.get_prompt(prompt.id).state is PromptState.CANCELLED


async def test_heartbeat_renews_the_lease(registry: Registry, recorder: Recorder) -> None:
    kept = registry.open_external("chatty", lease=0.2).id
    silent = registry.open_external("silent", lease=0.3).id

    async def reporter() -> None:
        while True:
            registry.heartbeat(kept)
            await asyncio.sleep(0.05)  # the reporter's heartbeat period, as a real client has

    beating = asyncio.ensure_future(reporter())
    try:
        # `silent` lapses after 0.3 s, by when `kept` would have lapsed too without heartbeats.
        await recorder.wait_for(
            lambda e: getattr(e.body, "task", None) is not None
            and e.body.task.id == silent
            and e.body.task.status.is_ended
        )
    finally:
        beating.cancel()
    assert registry.get(silent).end_reason is EndReason.LOST
    assert registry.get(kept).status is TaskStatus.IN_PROGRESS
    registry.heartbeat(kept, lease=60)
    registry.finish(kept)
