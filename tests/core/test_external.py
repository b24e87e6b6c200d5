"""External tasks: work reported by another process, kept alive by a lease."""

from __future__ import annotations

import pytest

from core.clock import ManualClock
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
    registry: Registry, recorder: Recorder, clock: ManualClock
) -> None:
    task_id = registry.open_external("flaky", lease=30).id
    prompt = registry.open_prompt(task_id, "Still there?")
    clock.advance(29.9)
    assert registry.get(task_id).status is TaskStatus.BLOCKED
    clock.advance(0.1)
    task = recorder.events[-1].body.task  # type: ignore[union-attr]
    assert (task.id, task.status, task.end_reason) == (task_id, TaskStatus.FAILED, EndReason.LOST)
    assert task.error == "no word from its reporter for 30s: its lease lapsed"
    assert registry.get_prompt(prompt.id).state is PromptState.CANCELLED


async def test_a_long_lease_lapse_reads_in_minutes(
    registry: Registry, recorder: Recorder, clock: ManualClock
) -> None:
    """An agent session's idle period is minutes: the error says so in a person's words."""
    task_id = registry.open_external("claude session", lease=1800).id
    clock.advance(1800)
    assert registry.get(task_id).error == "no word from its reporter for 30 min: its lease lapsed"


async def test_heartbeat_renews_the_lease(registry: Registry, clock: ManualClock) -> None:
    kept = registry.open_external("chatty", lease=20).id
    silent = registry.open_external("silent", lease=30).id
    # `silent` lapses at 30 s, by when `kept` would have lapsed too without heartbeats.
    for _ in range(6):
        registry.heartbeat(kept)
        clock.advance(5)  # the reporter's heartbeat period, as a real client has
    assert registry.get(silent).end_reason is EndReason.LOST
    assert registry.get(kept).status is TaskStatus.IN_PROGRESS
    registry.heartbeat(kept, lease=60)
    registry.finish(kept)


async def test_list_by_key_finds_the_newest_task_of_that_key_even_ended(
    registry: Registry,
) -> None:
    """How a bridge learns its session was aborted, without reading every task."""
    first = registry.open_external("session", lease=60, key="claude:s1")
    registry.abort(first.id)
    second = registry.open_external("session again", lease=60, key="claude:s1")
    registry.open_external("another", lease=60, key="claude:s2")
    assert [t.id for t in registry.list(key="claude:s1")] == [second.id]
    registry.abort(second.id)
    [ended] = registry.list(key="claude:s1")
    assert (ended.id, ended.end_reason) == (second.id, EndReason.ABORTED)
    assert registry.list(key="claude:none") == []
