"""Events: one per change, numbered without gaps, and enough to rebuild the registry."""

from __future__ import annotations

import asyncio

import pytest

from core.mirror import Mirror, OutOfSync
from core.model import Event, TaskCreated, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, mirror_state, registry_state, settle, until


async def workload(registry: Registry, puppet: Puppet) -> None:
    """A bit of everything: queueing, prompts, tokens, sub-tasks, abort, external work."""
    root = registry.submit("puppet", "root").id
    child = registry.submit("puppet", "child", parent_id=root).id
    queued = registry.submit("puppet", "queued").id
    await settle(registry, puppet)
    registry.add_tokens(root, 10, 5)
    reply = puppet.run(child, lambda ctx: ctx.ask("Go?"))
    await until(lambda: registry.get(child).blocked_on is not None)
    registry.answer(registry.get(child).blocked_on.prompt_id, "approve", by="alice")
    await reply
    ext = registry.open_external("ci", lease=60).id
    registry.open_prompt(ext, "Merge?")
    registry.set_progress(ext, "waiting")
    puppet.finish(child, "ok")
    await registry.join(child)
    await settle(registry, puppet)
    puppet.run(queued, lambda ctx: ctx.ask("Delete?"))
    await until(lambda: registry.get(queued).blocked_on is not None)
    registry.abort(root)
    await settle(registry, puppet)


async def test_each_change_is_exactly_one_event(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    task_id = registry.submit("puppet", "one").id
    await settle(registry, puppet)
    registry.add_tokens(task_id, 3, 4)
    reply = puppet.run(task_id, lambda ctx: ctx.ask("Go?"))
    await until(lambda: registry.get(task_id).blocked_on is not None)
    prompt_id = registry.get(task_id).blocked_on.prompt_id
    registry.answer(prompt_id, "approve")
    await reply
    puppet.run(task_id, lambda ctx: ctx.ask("Again?"))
    await until(lambda: registry.get(task_id).blocked_on is not None)
    registry.abort(task_id)
    await settle(registry, puppet)

    kinds = [(type(e.body).__name__, e.body.task.status.value) for e in recorder.events]
    assert kinds == [
        ("TaskCreated", "queued"),
        ("TaskChanged", "in_progress"),
        ("TaskChanged", "in_progress"),  # tokens
        ("PromptOpened", "blocked"),
        ("PromptClosed", "in_progress"),  # answered: resumed in the same step
        ("PromptOpened", "blocked"),
        ("PromptClosed", "failed"),  # aborted: prompt cancelled and task ended, one step
    ]
    assert recorder.events[2].body.task.tokens == 7
    assert recorder.events[-1].body.prompt.state.value == "cancelled"


async def test_seq_has_no_gaps_and_epoch_is_constant(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    await workload(registry, puppet)
    seqs = [e.seq for e in recorder.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs[-1] == registry.seq == registry.snapshot().seq
    assert {e.epoch for e in recorder.events} == {registry.epoch} == {42}
    recorder.assert_clean()


async def test_snapshot_plus_later_events_reproduce_the_registry(
    registry: Registry, puppet: Puppet
) -> None:
    # The client's way: subscribe first, snapshot later, skip what the snapshot holds.
    subscription = registry.subscribe()
    first = registry.submit("puppet", "before the snapshot").id
    await settle(registry, puppet)
    snapshot = registry.snapshot()
    mirror = Mirror()
    mirror.load(snapshot)
    assert mirror_state(mirror) == registry_state(registry)
    registry.add_tokens(first, 1, 1)
    puppet.finish(first)
    await registry.join(first)

    await workload(registry, puppet)
    applied = [mirror.apply(e) for e in subscription.drain()]
    subscription.close()
    assert applied.count(False) == snapshot.seq, "events the snapshot held were not skipped"
    assert mirror.seq == registry.seq
    assert mirror_state(mirror) == registry_state(registry)
    assert mirror.subtree_tokens(first) == registry.subtree_tokens(first)


async def test_mirror_refuses_a_gap_and_a_new_epoch(registry: Registry, puppet: Puppet) -> None:
    mirror = Mirror()
    mirror.load(registry.snapshot())
    events: list[Event] = []
    stop = registry.listen(events.append)
    registry.submit("puppet", "a")
    registry.submit("puppet", "b")
    stop()
    mirror.apply(events[0])
    with pytest.raises(OutOfSync):
        mirror.apply(events[2])  # events[1] was missed
    other = Registry(epoch=7, agents={"puppet": puppet})
    stranger: list[Event] = []
    other.listen(stranger.append)
    other.open_external("x", lease=60)
    with pytest.raises(OutOfSync):
        mirror.apply(stranger[0])
    await other.close()
    await settle(registry, puppet)


async def test_mirror_forgets_prompt_history_on_a_new_epoch(
    registry: Registry, puppet: Puppet
) -> None:
    """A restarted daemon without a journal reuses ids: old answers must not stick to them."""
    mirror = Mirror()
    mirror.load(registry.snapshot())
    events: list[Event] = []
    stop = registry.listen(events.append)
    task_id = registry.submit("puppet", "asks").id
    await settle(registry, puppet)
    puppet.run(task_id, lambda ctx: ctx.ask("Go?"))
    await until(lambda: registry.pending_prompts())
    registry.answer(registry.pending_prompts()[0].id, "approve")
    stop()
    for event in events:
        mirror.apply(event)
    assert [p.answer for p in mirror.history[task_id]] == ["approve"]
    mirror.load(registry.snapshot())  # a resync in the same epoch keeps it
    assert mirror.history[task_id]
    restarted = Registry(epoch=registry.epoch + 1, agents={"puppet": puppet})
    mirror.load(restarted.snapshot())
    assert not mirror.history.get(task_id)
    await restarted.close()
    await settle(registry, puppet)


async def test_every_subscriber_sees_the_same_sequence(
    registry: Registry, puppet: Puppet
) -> None:
    heard: list[list[Event]] = [[], [], []]
    stops = [registry.listen(h.append) for h in heard]
    subscriptions = [registry.subscribe() for _ in range(3)]

    def broken(event: Event) -> None:
        raise RuntimeError("a listener that breaks must not break the others")

    registry.listen(broken)
    await workload(registry, puppet)
    for stop in stops:
        stop()
    expected = [e.seq for e in heard[0]]
    assert expected == list(range(1, registry.seq + 1))
    for h in heard[1:]:
        assert h == heard[0]
    for subscription in subscriptions:
        got = []
        async for event in subscription:
            got.append(event)
            if event.seq == registry.seq:
                break
        subscription.close()
        assert got == heard[0]


async def test_subscription_waits_for_the_next_event(registry: Registry, puppet: Puppet) -> None:
    subscription = registry.subscribe()
    nxt = asyncio.ensure_future(subscription.__anext__())
    registry.submit("puppet", "wake up")
    event = await asyncio.wait_for(nxt, 5)
    assert isinstance(event.body, TaskCreated) and event.seq == 1
    subscription.close()
    registry.submit("puppet", "unheard")
    assert [e.body.task.status for e in subscription.drain()] == [TaskStatus.IN_PROGRESS]
    assert not [e for e in subscription.drain()]
    await settle(registry, puppet)

