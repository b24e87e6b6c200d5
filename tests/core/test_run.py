"""A task's run: its timeout, its token count, and waiting on sub-tasks."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import ManualClock
from core.errors import AlreadyAnswered, BadRequest, InvalidState, UnknownTask
from core.model import BlockedReason, EndReason, TaskChanged, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle, until


async def test_task_timeout_fails_it_and_cancels_its_work(
    registry: Registry, puppet: Puppet, recorder: Recorder, clock: ManualClock
) -> None:
    task_id = registry.submit("puppet", "slow", timeout=30).id
    await settle(registry, puppet)
    clock.advance(29.9)
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    clock.advance(0.1)
    event = recorder.events[-1]
    assert event.body.task.id == task_id  # type: ignore[union-attr]
    assert event.body.task.status is TaskStatus.FAILED
    assert event.body.task.end_reason is EndReason.TIMEOUT
    assert "timed out" in (event.body.task.error or "")
    await registry.join(task_id)
    assert puppet.cancelled == [task_id]


async def test_timeout_counts_blocked_time_and_cancels_the_prompt(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    task_id = registry.submit("puppet", "asks forever", timeout=60).id
    await settle(registry, puppet)
    reply = puppet.run(task_id, lambda ctx: ctx.ask("Anyone?"))
    await until(lambda: registry.get(task_id).blocked_on is not None, what="the question")
    clock.advance(60)
    task = registry.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.end_reason is EndReason.TIMEOUT and task.blocked_on is None
    assert registry.pending_prompts() == []
    await registry.join(task_id)
    assert task_id in puppet.cancelled
    assert not reply.done() or reply.cancelled()


async def test_add_tokens_counts_and_emits(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    task_id = registry.submit("puppet", "spender").id
    await settle(registry, puppet)
    before = len(recorder.events)
    registry.add_tokens(task_id, 100, 20)
    await puppet.run(task_id, lambda ctx: _spend(ctx, 5, 7))
    registry.add_tokens(task_id, 0, 0)  # nothing changed: no event
    task = registry.get(task_id)
    assert (task.prompt_tokens, task.completion_tokens, task.tokens) == (105, 27, 132)
    changes = [e.body.task for e in recorder.events[before:] if isinstance(e.body, TaskChanged)]
    assert [(t.prompt_tokens, t.completion_tokens) for t in changes] == [(100, 20), (105, 27)]
    with pytest.raises(BadRequest):
        registry.add_tokens(task_id, -1, 0)
    puppet.finish(task_id)
    await registry.join(task_id)
    with pytest.raises(InvalidState):
        registry.add_tokens(task_id, 1, 1)
    assert registry.get(task_id).tokens == 132


async def _spend(ctx: object, prompt: int, completion: int) -> None:
    ctx.add_tokens(prompt, completion)  # type: ignore[attr-defined]


async def wait_a_while(registry: Registry, clock: ManualClock, ids: list[int]) -> dict[int, object]:
    """`registry.wait(ids, timeout=5)` with the 5 s passed on the clock once it waits."""
    waiting = asyncio.ensure_future(registry.wait(ids, timeout=5))
    await asyncio.sleep(0)  # let it start waiting
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.1)
    return await asyncio.wait_for(waiting, 5)


async def test_wait_all_any_and_partial_on_timeout(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    a, b = (registry.submit("puppet", f"t{i}").id for i in range(2))
    await settle(registry, puppet)

    assert await wait_a_while(registry, clock, [a, b]) == {}
    assert await registry.wait([a, b], timeout=0) == {}

    any_done = asyncio.ensure_future(registry.wait([a, b], mode="any"))
    all_done = asyncio.ensure_future(registry.wait([a, b, a], mode="all"))
    puppet.finish(b, "b-result")
    got_any = await asyncio.wait_for(any_done, 5)
    assert list(got_any) == [b] and got_any[b].result == "b-result"
    assert not all_done.done()
    assert list(await wait_a_while(registry, clock, [a, b])) == [b]  # partial result

    puppet.finish(a, "a-result")
    got_all = await asyncio.wait_for(all_done, 5)
    assert {i: t.result for i, t in got_all.items()} == {a: "a-result", b: "b-result"}

    with pytest.raises(UnknownTask):
        await registry.wait([a, 404])
    with pytest.raises(BadRequest):
        await registry.wait([a], mode="some")  # type: ignore[arg-type]


async def test_ctx_wait_blocks_on_subtasks_and_frees_the_slot(
    registry: Registry, puppet: Puppet
) -> None:
    parent = registry.submit("puppet", "parent").id
    other = registry.submit("puppet", "other").id
    child = registry.submit("puppet", "child", parent_id=parent).id
    await settle(registry, puppet)
    assert registry.get(child).status is TaskStatus.QUEUED

    reply = puppet.run(parent, lambda ctx: ctx.wait([child]))
    await until(lambda: registry.get(parent).status is TaskStatus.BLOCKED)
    task = registry.get(parent)
    assert task.blocked_reason is BlockedReason.SUBTASKS and task.blocked_on is None
    assert registry.get(child).status is TaskStatus.IN_PROGRESS, "the freed slot was not used"
    assert registry.running == 2

    puppet.finish(child, "child-result")
    got = await asyncio.wait_for(reply, 5)
    assert got[child].result == "child-result"
    assert registry.get(parent).status is TaskStatus.IN_PROGRESS
    assert registry.get(parent).blocked_reason is None
    assert other in puppet.started


async def test_answering_applies_only_to_a_person_s_wait(
    registry: Registry, puppet: Puppet
) -> None:
    parent = registry.submit("puppet", "parent").id
    await settle(registry, puppet)
    asked = puppet.run(parent, lambda ctx: ctx.ask("Spawn helpers?"))
    await until(lambda: registry.get(parent).blocked_on is not None)
    old_prompt = registry.get(parent).blocked_on.prompt_id
    registry.answer(old_prompt, "approve")
    await asked
    child = registry.submit("puppet", "child", parent_id=parent).id
    waiting = puppet.run(parent, lambda ctx: ctx.wait([child]))
    await until(lambda: registry.get(parent).blocked_reason is BlockedReason.SUBTASKS)

    with pytest.raises(AlreadyAnswered):
        registry.answer(old_prompt, "approve")
    with pytest.raises(InvalidState):
        registry.open_prompt(parent, "Now?")
    assert registry.pending_prompts() == []
    task = registry.get(parent)
    assert (task.status, task.blocked_reason) == (TaskStatus.BLOCKED, BlockedReason.SUBTASKS)
    assert not waiting.done()
    await settle(registry, puppet)
    puppet.finish(child)
    await asyncio.wait_for(waiting, 5)


async def test_timeout_ends_the_subtree_of_the_task(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    parent = registry.submit("puppet", "slow parent", timeout=30).id
    child = registry.submit("puppet", "child", parent_id=parent).id
    await settle(registry, puppet)
    clock.advance(30)
    assert registry.get(parent).end_reason is EndReason.TIMEOUT
    ended_child = registry.get(child)
    assert ended_child.status is TaskStatus.FAILED
    assert ended_child.end_reason is EndReason.ABORTED
    assert ended_child.error == f"parent task {parent} timed out"
    await registry.join(child)
    assert child in puppet.cancelled


async def test_an_agent_that_aborts_its_own_subtree_is_cancelled(
    registry: Registry, puppet: Puppet
) -> None:
    task_id = registry.submit("puppet", "self-destructs").id
    await settle(registry, puppet)

    async def abort_myself(ctx) -> None:
        registry.abort(ctx.task_id)
        await asyncio.Event().wait()  # the next await must raise CancelledError

    puppet.run(task_id, abort_myself)
    await registry.join(task_id)
    assert registry.get(task_id).end_reason is EndReason.ABORTED
    assert task_id in puppet.cancelled
