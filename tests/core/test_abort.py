"""Abort: recursive by default, single on request, idempotent, and it stops work for real."""

from __future__ import annotations

import pytest

from core.errors import UnknownTask
from core.model import BlockedReason, EndReason, PromptState, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle, until


async def mixed_subtree(registry: Registry, puppet: Puppet) -> dict[str, int]:
    """A root waiting on its sub-tasks, with one child blocked on a prompt, two running,
    one queued; plus an unrelated queued task `outside`. The limit is two."""
    ids = {"root": registry.submit("puppet", "root").id}
    ids["asking"] = registry.submit("puppet", "asking", parent_id=ids["root"]).id
    await settle(registry, puppet)
    puppet.run(ids["root"], lambda ctx: ctx.wait([ids["asking"]]))
    await until(lambda: registry.get(ids["root"]).status is TaskStatus.BLOCKED)
    ids["running"] = registry.submit("puppet", "running", parent_id=ids["root"]).id
    await settle(registry, puppet)
    puppet.run(ids["asking"], lambda ctx: ctx.ask("Delete the branch?"))
    await until(lambda: registry.get(ids["asking"]).blocked_on is not None)
    ids["grandchild"] = registry.submit("puppet", "grandchild", parent_id=ids["running"]).id
    ids["queued"] = registry.submit("puppet", "queued", parent_id=ids["root"]).id
    ids["outside"] = registry.submit("puppet", "outside").id
    await settle(registry, puppet)
    return ids


async def test_recursive_abort_ends_every_kind_of_member(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    ids = await mixed_subtree(registry, puppet)
    status = {k: registry.get(v).status for k, v in ids.items()}
    assert status == {
        "root": TaskStatus.BLOCKED,
        "asking": TaskStatus.BLOCKED,
        "running": TaskStatus.IN_PROGRESS,
        "grandchild": TaskStatus.IN_PROGRESS,
        "queued": TaskStatus.QUEUED,
        "outside": TaskStatus.QUEUED,
    }
    assert registry.get(ids["root"]).blocked_reason is BlockedReason.SUBTASKS
    prompt_id = registry.get(ids["asking"]).blocked_on.prompt_id

    ended = registry.abort(ids["root"], by="alice")

    members = ["root", "asking", "running", "grandchild", "queued"]
    assert sorted(ended) == sorted(ids[k] for k in members)
    for task in registry.subtree(ids["root"]):
        assert (task.status, task.end_reason) == (TaskStatus.FAILED, EndReason.ABORTED)
        assert task.ended_at is not None and task.blocked_on is None
        assert "alice" in (task.error or "")
        if task.parent_id is not None:
            assert ended.index(task.parent_id) < ended.index(task.id)
    queued = registry.get(ids["queued"])
    assert queued.started_at is None
    prompt = registry.get_prompt(prompt_id)
    assert prompt.state is PromptState.CANCELLED and prompt.answer is None
    assert registry.pending_prompts() == []

    await settle(registry, puppet)
    running_ones = {ids[k] for k in ("root", "asking", "running", "grandchild")}
    assert set(puppet.cancelled) == running_ones
    assert ids["queued"] not in puppet.started
    assert recorder.status[ids["queued"]] is TaskStatus.FAILED
    assert all(
        e.body.task.status is not TaskStatus.IN_PROGRESS
        for e in recorder.events
        if getattr(e.body, "task", None) is not None and e.body.task.id == ids["queued"]
    ), "the queued member was started on its way out"
    # The slots went to the task outside the subtree.
    assert registry.get(ids["outside"]).status is TaskStatus.IN_PROGRESS


async def test_single_abort_leaves_children(registry: Registry, puppet: Puppet) -> None:
    parent = registry.submit("puppet", "parent").id
    child = registry.submit("puppet", "child", parent_id=parent).id
    await settle(registry, puppet)
    assert registry.abort(parent, recursive=False) == [parent]
    await settle(registry, puppet)
    assert registry.get(parent).status is TaskStatus.FAILED
    assert registry.get(child).status is TaskStatus.IN_PROGRESS
    assert puppet.cancelled == [parent]


async def test_abort_is_idempotent(registry: Registry, puppet: Puppet, recorder: Recorder) -> None:
    parent = registry.submit("puppet", "parent").id
    child = registry.submit("puppet", "child", parent_id=parent).id
    await settle(registry, puppet)
    puppet.finish(child)
    await registry.join(child)
    assert registry.abort(parent) == [parent]
    await settle(registry, puppet)
    seq = registry.seq
    assert registry.abort(parent) == []
    assert registry.abort(child) == []
    assert registry.seq == seq, "a repeated abort changed something"
    assert registry.get(child).status is TaskStatus.FINISHED


async def test_abort_unknown_task(registry: Registry) -> None:
    with pytest.raises(UnknownTask):
        registry.abort(404)
    with pytest.raises(UnknownTask):
        registry.abort(404, recursive=False)


async def test_abort_right_after_submit_leaves_no_run_behind(
    registry: Registry, puppet: Puppet
) -> None:
    """Aborted before its coroutine ever ran: the run must not linger."""
    task_id = registry.submit("puppet", "short-lived").id
    assert registry.abort(task_id) == [task_id]
    await registry.join(task_id)
    assert task_id not in puppet.started
    assert registry._runner.runs == 0
