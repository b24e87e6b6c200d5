"""Prompts: a question per id, answered exactly once, with typed refusals for everything else."""

from __future__ import annotations

import asyncio

import pytest

from core.clock import ManualClock
from core.errors import AlreadyAnswered, BadRequest, NotPending, PromptTimedOut, UnknownPrompt
from core.model import (
    BlockedReason,
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Question,
    TaskStatus,
)
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, settle, until


async def running_task(registry: Registry, puppet: Puppet) -> int:
    task_id = registry.submit("puppet", "asker").id
    await settle(registry, puppet)
    return task_id


async def ask(
    registry: Registry, puppet: Puppet, task_id: int, question: str = "Run `pytest -q`?", **kw: object
) -> tuple[Prompt, asyncio.Future[object]]:
    """Make the task ask; returns the prompt it opened and the future of what ask returned."""
    reply = puppet.run(task_id, lambda ctx: ctx.ask(question, **kw))
    await until(
        lambda: reply.done() or registry.get(task_id).blocked_on is not None,
        what="the question to open",
    )
    blocked_on = registry.get(task_id).blocked_on
    assert blocked_on is not None
    return registry.get_prompt(blocked_on.prompt_id), reply


async def test_ask_blocks_the_task_on_its_own_prompt(registry: Registry, puppet: Puppet) -> None:
    task_id = await running_task(registry, puppet)
    first, reply1 = await ask(registry, puppet, task_id, "Deploy?")
    task = registry.get(task_id)
    assert task.status is TaskStatus.BLOCKED
    assert task.blocked_reason is BlockedReason.PROMPT
    assert task.blocked_on is not None
    assert (task.blocked_on.prompt_id, task.blocked_on.question) == (first.id, "Deploy?")
    assert first.choices == ["approve", "deny"] == task.blocked_on.choices
    assert first.state is PromptState.PENDING and first.task_id == task_id
    assert registry.pending_prompts() == [first]

    registry.answer(first.id, "approve")
    assert await reply1 == "approve"
    second, _ = await ask(registry, puppet, task_id, "Really?", choices=["yes", "no", "later"])
    assert second.id != first.id
    assert second.choices == ["yes", "no", "later"]


async def test_answer_is_delivered_once_and_records_who_and_when(
    registry: Registry, puppet: Puppet, recorder: Recorder, clock: ManualClock
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, reply = await ask(registry, puppet, task_id)
    clock.advance(5)
    answered = registry.answer(prompt.id, "approve", by="alice")
    assert await reply == "approve"
    assert answered.state is PromptState.ANSWERED
    assert (answered.answer, answered.answered_by) == ("approve", "alice")
    assert answered.answered_at == prompt.created_at + 5 == clock.now()
    assert registry.get_prompt(prompt.id) == answered
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    assert registry.get(task_id).blocked_on is None
    assert registry.pending_prompts() == []
    closed = recorder.of(PromptClosed)
    assert len(closed) == 1 and closed[0].body.prompt == answered


async def test_double_answer_is_refused(registry: Registry, puppet: Puppet) -> None:
    task_id = await running_task(registry, puppet)
    prompt, reply = await ask(registry, puppet, task_id)
    registry.answer(prompt.id, "deny", by="alice")
    with pytest.raises(AlreadyAnswered, match="alice"):
        registry.answer(prompt.id, "approve", by="bob")
    assert await reply == "deny"
    assert registry.get_prompt(prompt.id).answered_by == "alice"


async def test_unknown_prompt_is_refused(registry: Registry) -> None:
    with pytest.raises(UnknownPrompt):
        registry.answer(12345, "approve")
    with pytest.raises(UnknownPrompt):
        registry.get_prompt(12345)


async def test_answer_to_a_cancelled_prompt_is_refused(registry: Registry, puppet: Puppet) -> None:
    task_id = await running_task(registry, puppet)
    prompt, _ = await ask(registry, puppet, task_id)
    registry.abort(task_id)
    assert registry.get_prompt(prompt.id).state is PromptState.CANCELLED
    with pytest.raises(NotPending) as info:
        registry.answer(prompt.id, "approve")
    assert not isinstance(info.value, AlreadyAnswered)
    assert registry.get_prompt(prompt.id).answer is None


async def test_late_answer_never_lands_on_the_next_question(
    registry: Registry, puppet: Puppet
) -> None:
    task_id = await running_task(registry, puppet)
    first, reply = await ask(registry, puppet, task_id, "First?")
    registry.answer(first.id, "approve", by="alice")
    assert await reply == "approve"
    second, reply2 = await ask(registry, puppet, task_id, "Second?")
    with pytest.raises(AlreadyAnswered):
        registry.answer(first.id, "deny", by="bob")  # meant for the first question
    assert registry.get_prompt(second.id).state is PromptState.PENDING
    assert not reply2.done()
    assert registry.get(task_id).blocked_on.prompt_id == second.id


async def test_timeout_delivers_the_declared_default(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, reply = await ask(registry, puppet, task_id, timeout=90, default="deny")
    assert (prompt.timeout, prompt.default) == (90, "deny")
    clock.advance(89.9)
    assert not reply.done()
    clock.advance(0.1)
    assert await asyncio.wait_for(reply, 5) == "deny"
    closed = registry.get_prompt(prompt.id)
    assert closed.state is PromptState.ANSWERED
    assert (closed.answer, closed.answered_by) == ("deny", "timeout")
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS


async def test_timeout_without_default_raises_in_the_agent(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, reply = await ask(registry, puppet, task_id, timeout=90)
    clock.advance(90)
    with pytest.raises(PromptTimedOut):
        await asyncio.wait_for(reply, 5)
    closed = registry.get_prompt(prompt.id)
    assert closed.state is PromptState.TIMED_OUT and closed.answer is None
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    with pytest.raises(NotPending) as info:
        registry.answer(prompt.id, "approve")
    assert not isinstance(info.value, AlreadyAnswered)


async def test_choice_matching_ignores_case_and_free_text_is_kept(
    registry: Registry, puppet: Puppet
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, reply = await ask(registry, puppet, task_id, choices=["Yes", "No"])
    assert registry.answer(prompt.id, "  yES ").answer == "Yes"
    assert await reply == "Yes"
    prompt, reply = await ask(registry, puppet, task_id)
    assert registry.answer(prompt.id, "only on staging, please").answer == "only on staging, please"
    assert await reply == "only on staging, please"
    prompt, _ = await ask(registry, puppet, task_id)
    with pytest.raises(BadRequest):
        registry.answer(prompt.id, "   ")
    assert registry.get_prompt(prompt.id).state is PromptState.PENDING


@pytest.mark.parametrize(
    ("choices", "answer", "denial"),
    [
        (None, "deny", True),
        (None, "DENY", True),
        (None, "approve", False),
        (None, "not now", False),
        (["yes", "no"], "no", True),
        (["yes", "no"], "yes", False),
        (["ok"], "ok", False),
        (["yes", "no"], "deny", True),
        (["staging", "production", "skip"], "skip", True),
        (["yes", "no", "cancel"], "no", True),
        (["yes", "no", "cancel"], "Cancel", True),
        (["yes", "no", "cancel"], "yes", False),
    ],
)
async def test_is_denial(
    registry: Registry, puppet: Puppet, choices: list[str] | None, answer: str, denial: bool
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, _ = await ask(registry, puppet, task_id, choices=choices)
    answered = registry.answer(prompt.id, answer, reason="too risky" if denial else None)
    assert answered.is_denial is denial
    if denial:
        assert answered.reason == "too risky"


async def test_bad_questions_are_refused(registry: Registry, puppet: Puppet) -> None:
    task_id = await running_task(registry, puppet)
    for kwargs in (
        {"question": " "},
        {"question": "q", "choices": []},
        {"question": "q", "choices": ["a", "A"]},
        {"question": "q", "timeout": 0},
        {"question": "q", "default": "maybe"},
    ):
        with pytest.raises(BadRequest):
            registry.open_prompt(task_id, **kwargs)  # type: ignore[arg-type]
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    assert registry.pending_prompts() == []


async def test_answer_given_inside_an_event_listener_reaches_the_agent(
    registry: Registry, puppet: Puppet, recorder: Recorder
) -> None:
    """An auto-answerer may answer synchronously from a listener, in the PromptOpened step."""

    def auto_answer(event: Event) -> None:
        if isinstance(event.body, PromptOpened):
            registry.answer(event.body.prompt.id, "approve", by="auto")

    stop = registry.listen(auto_answer)
    later = Recorder(registry)  # listens after the answerer: must still see seq in order
    task_id = await running_task(registry, puppet)
    reply = puppet.run(task_id, lambda ctx: ctx.ask("Go?"))
    assert await asyncio.wait_for(reply, 5) == "approve"
    stop()
    assert registry.get(task_id).status is TaskStatus.IN_PROGRESS
    recorder.assert_clean()
    later.assert_clean()
    assert [e.seq for e in later.events] == [e.seq for e in recorder.events]


async def test_a_snapshot_taken_during_the_answer_event_lists_it_no_more(
    registry: Registry, puppet: Puppet
) -> None:
    task_id = await running_task(registry, puppet)
    prompt, _ = await ask(registry, puppet, task_id)
    seen: list[list[int]] = []
    registry.listen(lambda event: seen.append([p.id for p in registry.snapshot().prompts]))
    registry.answer(prompt.id, "approve")
    assert seen[0] == []


async def test_ask_prompt_tells_the_agent_who_answered_and_why(
    registry: Registry, puppet: Puppet
) -> None:
    task_id = await running_task(registry, puppet)
    reply = puppet.run(task_id, lambda ctx: ctx.ask_prompt("Drop the table?"))
    await until(lambda: registry.get(task_id).blocked_on is not None)
    prompt_id = registry.get(task_id).blocked_on.prompt_id
    registry.answer(prompt_id, "deny", by="ana", reason="not on prod")
    answered = await reply
    assert (answered.id, answered.answer, answered.reason, answered.answered_by) == (
        prompt_id, "deny", "not on prod", "ana"
    )
    assert answered.is_denial
    assert [p.id for p in registry.prompts_of(task_id)] == [prompt_id]


async def test_a_question_or_its_text_and_keywords_but_not_both(
    registry: Registry, puppet: Puppet, clock: ManualClock
) -> None:
    task_id = await running_task(registry, puppet)
    question = Question(text="Deploy to?", choices=["staging", "prod"], timeout=60, default="staging")
    mixed = puppet.run(task_id, lambda ctx: ctx.ask(question, choices=["a", "b"]))
    with pytest.raises(TypeError, match="not both"):
        await asyncio.wait_for(mixed, 5)
    reply = puppet.run(task_id, lambda ctx: ctx.ask_prompt(question))
    await until(lambda: registry.get(task_id).blocked_on is not None, what="the question")
    prompt = registry.pending_prompts()[0]
    assert (prompt.question, prompt.choices, prompt.timeout, prompt.default) == (
        "Deploy to?", ["staging", "prod"], 60, "staging"
    )
    clock.advance(60)
    answered = await asyncio.wait_for(reply, 5)
    assert (answered.answer, answered.answered_by) == ("staging", "timeout")
