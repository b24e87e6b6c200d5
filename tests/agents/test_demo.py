"""The demo agent: reproducible for a seed, and it does what a real agent does (tokens, sub-tasks,
questions, failures)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

import pytest

from core.agents import builtin_agents
from core.agents.demo import DEMO_TASKS, FREE_TEXT_ANSWERS, auto_answer, make_demo_agent
from core.errors import BadRequest
from core.model import Event, Prompt, PromptOpened, Task, TaskStatus
from core.registry import Registry

Answerer = Callable[[Prompt], str]

DEMO_ROOTS = [d for agent, d in DEMO_TASKS if agent == "demo"]


def first_choice(prompt: Prompt) -> str:
    return prompt.choices[0]


def last_choice(prompt: Prompt) -> str:
    return prompt.choices[-1]


async def run_demo(
    *,
    seed: int,
    roots: list[str],
    answer: Answerer = first_choice,
    speed: float = math.inf,
    max_depth: int = 2,
    max_concurrent: int = 4,
) -> tuple[Registry, list[Event]]:
    """Run demo roots to the end in a fresh registry, answering every prompt with `answer`.

    Returns the registry (closed) and every event it published.
    """
    registry = Registry(max_concurrent=max_concurrent, default_timeout=None, epoch=1)
    registry.register_agent("demo", make_demo_agent(seed=seed, speed=speed, max_depth=max_depth))
    events: list[Event] = []
    all_ended = asyncio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if all(t.status.is_ended for t in registry.list(limit=None)):
            all_ended.set()

    registry.listen(on_event)
    sub = registry.subscribe()

    async def answerer() -> None:
        async for event in sub:
            if isinstance(event.body, PromptOpened):
                registry.answer(event.body.prompt.id, answer(event.body.prompt), by="test")

    answering = asyncio.get_running_loop().create_task(answerer())
    try:
        for description in roots:
            registry.submit("demo", description)
        await asyncio.wait_for(all_ended.wait(), timeout=10)
    finally:
        answering.cancel()
        sub.close()
        await registry.close()
    return registry, events


def trace(events: list[Event]) -> list[tuple[str, str, str]]:
    """What a person watching would see: (event kind, task description, status)."""
    out = []
    for event in events:
        task = getattr(event.body, "task", None)
        assert task is not None
        out.append((type(event.body).__name__, task.description, task.status.value))
    return out


def depth(tasks: dict[int, Task], task: Task) -> int:
    levels = 0
    while task.parent_id is not None:
        task = tasks[task.parent_id]
        levels += 1
    return levels


async def test_same_seed_replays_the_same_run() -> None:
    _, first = await run_demo(seed=3, roots=DEMO_ROOTS)
    _, second = await run_demo(seed=3, roots=DEMO_ROOTS)

    assert len(first) > 50
    assert trace(first) == trace(second)


async def test_another_seed_gives_another_run() -> None:
    _, first = await run_demo(seed=3, roots=DEMO_ROOTS)
    _, other = await run_demo(seed=4, roots=DEMO_ROOTS)

    assert trace(first) != trace(other)


async def test_demo_spends_tokens_spawns_sub_tasks_and_asks() -> None:
    registry, events = await run_demo(seed=0, roots=DEMO_ROOTS)
    tasks = {t.id: t for t in registry.list(limit=None)}

    for task in tasks.values():
        assert task.status.is_ended
        assert task.prompt_tokens >= 1000, task  # every task reads and plans
        assert task.completion_tokens >= 100, task
    children = [t for t in tasks.values() if t.parent_id is not None]
    assert children, "no sub-tasks were spawned"
    assert all(t.created_by == "demo" and t.agent == "demo" for t in children)
    questions = {e.body.prompt.question for e in events if isinstance(e.body, PromptOpened)}
    assert any(q.startswith("Run `") for q in questions), questions
    progress = {
        e.body.task.progress for e in events if getattr(e.body, "task", None) is not None
    }
    assert "planning" in progress
    assert any(p and p.startswith("reading ") for p in progress)
    for task in tasks.values():
        if task.status is TaskStatus.FINISHED:
            assert task.result and "\n" not in task.result


async def test_some_seed_makes_a_task_fail_with_a_realistic_error() -> None:
    for seed in range(20):
        registry, _ = await run_demo(seed=seed, roots=DEMO_ROOTS)
        failed = registry.list(status=TaskStatus.FAILED, limit=None)
        if failed:
            break
    else:
        pytest.fail("no demo task failed in 20 seeds")
    known = ("RateLimitError: ", "ContextLengthError: ", "TestsFailed: ", "ToolError: ")
    assert all(t.error and t.error.startswith(known) for t in failed), [t.error for t in failed]


async def test_every_failure_is_a_simulated_one() -> None:
    """Whatever the seed, a demo task fails only the way it means to (no bug of its own)."""
    known = ("RateLimitError: ", "ContextLengthError: ", "TestsFailed: ", "ToolError: ")
    for seed in range(30):
        registry, _ = await run_demo(seed=seed, roots=DEMO_ROOTS)
        failed = registry.list(status=TaskStatus.FAILED, limit=None)
        assert all(t.error and t.error.startswith(known) for t in failed), (
            seed, [t.error for t in failed]
        )


async def test_sub_tasks_stop_at_the_depth_limit() -> None:
    for seed in range(6):
        registry, _ = await run_demo(seed=seed, roots=DEMO_ROOTS, max_depth=1)
        tasks = {t.id: t for t in registry.list(limit=None)}
        assert max(depth(tasks, t) for t in tasks.values()) <= 1
    registry, _ = await run_demo(seed=0, roots=DEMO_ROOTS, max_depth=0)
    assert all(t.parent_id is None for t in registry.list(limit=None))


async def test_denied_steps_are_skipped_and_noted() -> None:
    registry, events = await run_demo(seed=1, roots=DEMO_ROOTS, answer=last_choice)
    asked = {e.body.task.id for e in events if isinstance(e.body, PromptOpened)}
    assert asked
    noted = [
        t for t in registry.list(limit=None)
        if t.id in asked and t.status is TaskStatus.FINISHED
    ]
    assert noted
    for task in noted:
        assert "denied" in task.result or "skipped" in task.result or "no branch" in task.result


async def test_demo_is_quick_at_high_speed() -> None:
    """At speed 50 a root with its sub-tasks ends well within the test timeout."""
    registry, _ = await run_demo(seed=0, roots=DEMO_ROOTS[:2], speed=50)
    assert all(t.status.is_ended for t in registry.list(limit=None))


def test_bad_options_are_refused() -> None:
    with pytest.raises(BadRequest):
        make_demo_agent(speed=0)
    with pytest.raises(BadRequest):
        make_demo_agent(max_depth=-1)


def test_demo_tasks_name_builtin_agents_and_vary() -> None:
    agents = builtin_agents()
    assert 6 <= len(DEMO_TASKS) <= 8
    assert {agent for agent, _ in DEMO_TASKS} == set(agents)
    assert len({d for _, d in DEMO_TASKS}) == len(DEMO_TASKS)


def test_auto_answer_mostly_approves_sometimes_denies_with_reason() -> None:
    rng = random.Random(5)
    prompt = Prompt(id=1, task_id=1, question="Run `pytest -q`?")
    answers = [auto_answer(prompt, rng) for _ in range(400)]

    approvals = [a for a in answers if a == ("approve", None)]
    denials = [a for a in answers if a[0] == "deny"]
    assert len(approvals) > len(answers) * 0.7
    assert denials and all(reason for _, reason in denials)
    assert {text for text, _ in answers} == {"approve", "deny"}


@pytest.mark.parametrize("choices", [
    ["no", "yes"],                      # the refusal first: the last choice approves
    ["staging", "skip", "production"],  # the refusal in the middle
    ["us", "eu", "asia"],               # none refuses: no denial to give a reason for
])
def test_auto_answer_gives_a_denial_reason_only_with_the_choice_that_refuses(
        choices: list[str]) -> None:
    rng = random.Random(5)
    prompt = Prompt(id=1, task_id=1, question="Deploy where?", choices=choices)
    answers = [auto_answer(prompt, rng) for _ in range(400)]
    with_reason = {text for text, reason in answers if reason is not None}
    denial = Prompt.denial_among(choices)
    assert with_reason == ({denial} if denial is not None else set())


def test_auto_answer_types_free_text_for_open_questions() -> None:
    rng = random.Random(5)
    question = "Which branch should I base the fix on?"
    prompt = Prompt(
        id=1, task_id=1, question=question, choices=["main", "release/2.4", "cancel"]
    )
    texts = {auto_answer(prompt, rng)[0] for _ in range(400)}

    assert {"main", "release/2.4", "cancel"} <= texts
    assert texts & set(FREE_TEXT_ANSWERS[question])
