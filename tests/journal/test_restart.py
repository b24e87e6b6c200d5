"""The restart story, at library level: a fresh registry restored from the journal of a dead one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.context import AgentContext
from core.journal import Journal
from core.model import EndReason, PromptState, TaskStatus
from core.registry import Registry
from tests.support import until


async def forever(ctx: AgentContext) -> str:
    """An in-process agent that works until it is cancelled."""
    await asyncio.Event().wait()
    return "never"


async def asks(ctx: AgentContext) -> str:
    """An in-process agent blocked on a question."""
    return await ctx.ask("Run `pytest -q`?")


async def quick(ctx: AgentContext) -> str:
    ctx.add_tokens(100, 20)
    return "done"


def agents() -> dict:
    return {"forever": forever, "asks": asks, "quick": quick}


async def test_restart_restores_history_and_ends_what_died(journal_path: Path) -> None:
    # --- the first daemon run ---------------------------------------------------
    journal = Journal.open(journal_path)
    first = Registry(agents=agents(), max_concurrent=8)
    journal.attach(first)
    running = first.submit("forever", "index the repo")
    blocked = first.submit("asks", "run the tests")
    finished = first.submit("quick", "say hi")
    await until(lambda: first.get(finished.id).status is TaskStatus.FINISHED)
    await until(lambda: first.get(blocked.id).status is TaskStatus.BLOCKED)
    in_process_prompt = first.get(blocked.id).blocked_on.prompt_id

    waiting = first.open_external("deploy to prod", lease=60)
    waiting_prompt = first.open_prompt(waiting.id, "Deploy?")
    answered = first.open_external("migrate db", lease=60)
    answered_prompt = first.open_prompt(answered.id, "Migrate?", choices=["yes", "no"])
    first.answer(answered_prompt.id, "yes", by="tui:ana@box")
    journal.audit(
        "answer", task_id=answered.id, prompt_id=answered_prompt.id, detail="yes",
        by="tui:ana@box", origin=None,
    )
    journal.commit()  # what the daemon does before replying ok
    first.add_tokens(waiting.id, 7)  # an ordinary event, group-committed later

    # --- the daemon dies: its in-process runs stop with nothing recorded ----------
    journal.detach()
    await first.close()
    journal.close()  # writes the last group, as the 50 ms timer would have

    # --- the second run on the same file ------------------------------------------
    again = Journal.open(journal_path)
    second = Registry(agents=agents(), first_id=again.next_id())
    again.attach(second)
    second.restore(*again.load())
    again.commit()
    try:
        assert second.epoch != first.epoch  # clients see a new epoch and resync

        for task_id in (running.id, blocked.id):  # in-process work cannot survive a restart
            task = second.get(task_id)
            assert task.status is TaskStatus.FAILED
            assert task.end_reason is EndReason.RESTARTED
            assert task.error == "daemon restarted while the task ran"
        assert second.get_prompt(in_process_prompt).state is PromptState.CANCELLED

        done = second.get(finished.id)
        assert (done.status, done.result, done.prompt_tokens) == (TaskStatus.FINISHED, "done", 100)

        ext = second.get(waiting.id)  # external: kept as it was, for its reporter to return
        assert ext.status is TaskStatus.BLOCKED
        assert ext.blocked_on.prompt_id == waiting_prompt.id
        assert ext.prompt_tokens == 7
        assert [p.id for p in second.pending_prompts()] == [waiting_prompt.id]

        kept = second.get_prompt(answered_prompt.id)
        assert (kept.state, kept.answer, kept.answered_by) == (
            PromptState.ANSWERED, "yes", "tui:ana@box"
        )
        assert second.get(answered.id).status is TaskStatus.IN_PROGRESS
        assert [e.detail for e in again.history(task_id=answered.id)] == ["yes"]

        # Nothing restored may be stuck: every live task can still end.
        for task in second.list(limit=None):
            assert task.status.is_ended or task.external

        # An answer given while the reporter is away waits on the prompt's record.
        second.answer(waiting_prompt.id, "approve", by="cli:bo@srv")
        again.commit()
        back = {p.id: p for p in second.prompts_of(waiting.id)}[waiting_prompt.id]
        assert (back.state, back.answer, back.answered_by) == (
            PromptState.ANSWERED, "approve", "cli:bo@srv"
        )
        assert second.get(waiting.id).status is TaskStatus.IN_PROGRESS
        second.finish(waiting.id, "deployed")  # the reporter returns and ends its task

        fresh = second.submit("quick", "new work")  # ids never collide with history
        assert fresh.id > max(running.id, blocked.id, finished.id, waiting.id, answered.id)
        await until(lambda: second.get(fresh.id).status is TaskStatus.FINISHED)
    finally:
        again.close()
        await second.close()

    # --- and a third start sees all of it ----------------------------------------
    third_journal = Journal.open(journal_path)
    third = Registry(agents=agents(), first_id=third_journal.next_id())
    third_journal.attach(third)
    third.restore(*third_journal.load())
    try:
        assert third.get(waiting.id).result == "deployed"
        assert third.get_prompt(waiting_prompt.id).answer == "approve"
        assert third.get(fresh.id).status is TaskStatus.FINISHED
        assert third.get(running.id).end_reason is EndReason.RESTARTED
    finally:
        third_journal.close()
        await third.close()


async def test_restart_after_eviction_reuses_no_id(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    first = Registry(agents=agents())
    journal.attach(first)
    old = first.open_external("old", lease=60)
    first.finish(old.id)
    first.evict([old.id])
    journal.close()
    await first.close()

    again = Journal.open(journal_path)
    second = Registry(agents=agents(), first_id=again.next_id())
    again.attach(second)
    second.restore(*again.load())
    try:
        assert len(second) == 0  # the evicted task stayed on disk only
        new = second.open_external("new", lease=60)
        assert new.id > old.id
        again.commit()
        evicted, _ = again.task(old.id)
        assert evicted.description == "old"  # history was not overwritten
    finally:
        again.close()
        await second.close()


async def test_clean_shutdown_then_start_leaves_nothing_live(journal_path: Path) -> None:
    """Stopping in `taskdeck serve`'s order (registry closed while attached) then starting again."""
    journal = Journal.open(journal_path)
    first = Registry(agents=agents())
    journal.attach(first)
    started = first.submit("forever", "x")
    not_yet = first.submit("forever", "y")
    await first.close()
    journal.commit()
    journal.close()

    again = Journal.open(journal_path)
    second = Registry(agents=agents(), first_id=again.next_id())
    again.attach(second)
    second.restore(*again.load())
    try:
        for task_id in (started.id, not_yet.id):
            task = second.get(task_id)
            assert task.status is TaskStatus.FAILED
            assert task.end_reason is EndReason.RESTARTED  # not aborted by anybody
    finally:
        again.close()
        await second.close()


async def test_a_registry_that_reuses_ids_is_reported(
    journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal.open(journal_path)
    first = Registry()
    journal.attach(first)
    first.open_external("old", lease=60)
    journal.close()
    await first.close()

    again = Journal.open(journal_path)
    careless = Registry()  # no first_id=again.next_id()
    again.attach(careless)
    try:
        careless.open_external("new", lease=60)
        assert "Registry(first_id=journal.next_id())" in caplog.text
    finally:
        again.close()
        await careless.close()
