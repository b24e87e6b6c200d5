"""Restore after a restart, eviction of ended subtrees, and closing the registry."""

from __future__ import annotations

import asyncio

import msgspec

from core.clock import ManualClock
from core.model import EndReason, Prompt, PromptState, Task, TasksEvicted, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle


async def test_close_cancels_runs_and_starts_nothing(registry: Registry, puppet: Puppet) -> None:
    a, b, queued = (registry.submit("puppet", f"t{i}").id for i in range(3))
    await settle(registry, puppet)
    await registry.close()
    assert sorted(puppet.cancelled) == [a, b]
    assert queued not in puppet.started
    assert registry.get(queued).status is TaskStatus.QUEUED
    runs = [t for t in asyncio.all_tasks() if t.get_name().startswith("taskdeck-task-")]
    assert all(run.done() for run in runs), runs


def journal_tasks() -> tuple[list[Task], list[Prompt]]:
    """What a journal could hold after a crash: one task of every kind."""
    ext_prompt = Prompt(id=2, task_id=4, question="Ship it?")
    tasks = [
        Task(id=1, agent="puppet", description="running", status=TaskStatus.IN_PROGRESS),
        Task(id=2, agent="puppet", description="queued", parent_id=1),
        Task(
            id=3,
            agent="puppet",
            description="asking",
            status=TaskStatus.BLOCKED,
            blocked_reason="prompt",  # type: ignore[arg-type]
            blocked_on={"prompt_id": 1, "question": "Go?", "choices": ["approve", "deny"]},  # type: ignore[arg-type]
        ),
        Task(
            id=4,
            agent="ci",
            description="external",
            external=True,
            status=TaskStatus.BLOCKED,
            blocked_reason="prompt",  # type: ignore[arg-type]
            blocked_on={"prompt_id": 2, "question": "Ship it?", "choices": ["approve", "deny"]},  # type: ignore[arg-type]
        ),
        Task(id=5, agent="puppet", description="done", status=TaskStatus.FINISHED, result="ok"),
    ]
    prompts = [Prompt(id=1, task_id=3, question="Go?"), ext_prompt]
    return tasks, prompts


async def test_restore_ends_in_process_tasks_and_keeps_external_ones(
    registry: Registry, puppet: Puppet
) -> None:
    tasks, prompts = journal_tasks()
    tasks = msgspec.convert(msgspec.to_builtins(tasks), list[Task])
    registry.restore(tasks, prompts)
    for task_id in (1, 2, 3):
        task = registry.get(task_id)
        assert (task.status, task.end_reason) == (TaskStatus.FAILED, EndReason.RESTARTED)
        assert task.blocked_on is None and task.ended_at is not None
    assert registry.get_prompt(1).state is PromptState.CANCELLED
    assert registry.get(5).status is TaskStatus.FINISHED
    external = registry.get(4)
    assert external.status is TaskStatus.BLOCKED
    assert [p.id for p in registry.pending_prompts()] == [2]
    registry.heartbeat(4)
    registry.answer(2, "approve", by="bob")
    assert registry.get(4).status is TaskStatus.IN_PROGRESS
    assert registry.submit("puppet", "new").id == 6
    await settle(registry, puppet)
    assert puppet.started == [6]
    assert [c.id for c in registry.children(1)] == [2]


async def test_restore_rearms_the_timeout_of_a_pending_prompt(
    registry: Registry, clock: ManualClock
) -> None:
    """A prompt whose time ran out while the daemon was down times out at once."""
    now = registry.clock()
    external = Task(
        id=1, agent="ask", description="deploy?", status=TaskStatus.BLOCKED, external=True,
        created_at=now - 60, started_at=now - 60,
    )  # fmt: skip
    late = Prompt(id=1, task_id=1, question="Deploy?", timeout=30, created_at=now - 60)
    registry.restore([external], [late])
    assert registry.get_prompt(1).state is PromptState.PENDING
    clock.advance(0)
    assert registry.get_prompt(1).state is PromptState.TIMED_OUT
    assert registry.get(1).status is TaskStatus.IN_PROGRESS


async def test_restore_keeps_an_external_task_s_own_lease(
    registry: Registry, clock: ManualClock
) -> None:
    now = registry.clock()
    reporter = Task(
        id=1, agent="ask", description="export", status=TaskStatus.IN_PROGRESS, external=True,
        created_at=now, started_at=now, lease=45,
    )  # fmt: skip
    registry.restore([reporter], [])
    clock.advance(44.9)
    assert registry.get(1).status is TaskStatus.IN_PROGRESS
    clock.advance(0.1)
    assert registry.get(1).end_reason is EndReason.LOST


async def finished_tree(registry: Registry, puppet: Puppet) -> dict[str, int]:
    """root -> child -> grandchild, all finished; plus a finished root `lone`."""
    ids = {"root": registry.submit("puppet", "root").id}
    ids["child"] = registry.submit("puppet", "child", parent_id=ids["root"]).id
    await settle(registry, puppet)
    ids["grandchild"] = registry.submit("puppet", "grandchild", parent_id=ids["child"]).id
    ids["lone"] = registry.submit("puppet", "lone").id
    for key in ("root", "child", "grandchild", "lone"):
        await settle(registry, puppet)
        puppet.finish(ids[key])
        await registry.join(ids[key])
    return ids


async def test_evict_drops_ended_subtrees_and_says_so(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    ids = await finished_tree(registry, puppet)
    dropped = registry.evict([ids["root"], ids["root"]])
    assert sorted(dropped) == sorted([ids["root"], ids["child"], ids["grandchild"]])
    assert [t.id for t in registry.list(limit=None)] == [ids["lone"]]
    evicted = recorder.of(TasksEvicted)
    assert len(evicted) == 1 and sorted(evicted[0].body.task_ids) == sorted(dropped)
    assert evicted[0].seq == registry.seq


async def test_evict_keeps_subtrees_with_live_members(
    registry: Registry, puppet: Puppet
) -> None:
    root = registry.submit("puppet", "root").id
    child = registry.submit("puppet", "child", parent_id=root).id
    await settle(registry, puppet)
    grandchild = registry.submit("puppet", "grandchild", parent_id=child).id
    await settle(registry, puppet)
    for task_id in (root, child):
        puppet.finish(task_id)
        await registry.join(task_id)
    seq = registry.seq
    assert registry.evict([root]) == []
    assert registry.evict([child]) == []
    assert registry.evict([grandchild]) == []
    assert registry.seq == seq, "an eviction of nothing emitted an event"
    assert len(registry) == 3
