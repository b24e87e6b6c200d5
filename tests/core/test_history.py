"""Closed prompts packed by blocks: everything packed reads back equal, open prompts stay
the objects the registry changes, and the registry's history reads are unchanged."""

from __future__ import annotations

import random

import pytest

from core.clock import ManualClock
from core.errors import AlreadyAnswered, UnknownPrompt
from core.history import BLOCK, PACK_EVERY, PromptStore, pack, unpack, unpack_one
from core.model import Action, Prompt, PromptClosed, PromptState, Question
from core.registry import Registry

_CLOSED = [PromptState.ANSWERED, PromptState.CANCELLED, PromptState.TIMED_OUT]
_WORDS = ["approve", "deny", "edit", "yes", "no", "ship ✓", "hold", "", "é\n\x00", "x" * 300]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))


def _maybe(rng: random.Random, value: object) -> object:
    return value if rng.random() < 0.5 else None


def random_prompt(rng: random.Random, prompt_id: int, state: PromptState) -> Prompt:
    """A prompt with every field drawn at random, its action's input JSON-like and nested."""
    choices = [f"{_text(rng)} {n}" for n in range(rng.randint(1, 5))]
    action = Action(
        agent=rng.choice(["claude", "codex"]), tool=rng.choice(["Bash", "Edit", "WebFetch"]),
        input={"command": _text(rng), "n": rng.randint(-2**63, 2**63 - 1), "f": rng.random(),
               "nested": {"list": [1, None, True, _text(rng)], "deep": {"k": 1.5e300}}},
        cwd=_maybe(rng, "/tmp/ü"), session=_maybe(rng, "s-1"),
        suggestions=[_text(rng) for _ in range(rng.randint(0, 3))],
    )
    return Prompt(
        id=prompt_id, task_id=rng.randint(1, 2**40), question=_text(rng), choices=choices,
        state=state, timeout=_maybe(rng, rng.uniform(0.001, 1e6)),
        default=_maybe(rng, rng.choice(choices)), created_at=rng.uniform(0, 2e9),
        answer=_maybe(rng, _text(rng)), reason=_maybe(rng, _text(rng)),
        answered_by=_maybe(rng, rng.choice(["user", "rule:3", "timeout"])),
        answered_at=_maybe(rng, rng.uniform(0, 2e9)),
        action=_maybe(rng, action),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", range(20))
def test_packed_prompts_read_back_equal_field_by_field(seed: int) -> None:
    rng = random.Random(seed)
    prompts = [random_prompt(rng, i, rng.choice(_CLOSED)) for i in range(rng.randint(0, 70))]
    packed = pack(prompts)
    back = unpack(packed)
    assert back == prompts
    assert all(type(p) is Prompt for p in back)  # encodes as a map again on the wire
    for prompt in prompts:
        assert unpack_one(packed, prompt.id) == prompt
    assert unpack_one(packed, len(prompts)) is None


@pytest.mark.parametrize("seed", range(10))
def test_the_store_reads_every_prompt_back_through_adds_closes_and_drops(seed: int) -> None:
    """A model dict beside the store: after every step each id reads the same prompt."""
    rng = random.Random(seed)
    store = PromptStore(pack_every=8)
    model: dict[int, Prompt] = {}
    next_id = rng.randint(0, 500)
    packed_seen = 0
    for _ in range(600):
        roll = rng.random()
        if roll < 0.5:
            prompt = random_prompt(rng, next_id, rng.choice([PromptState.PENDING, *_CLOSED]))
            next_id += rng.choice([1, 1, 1, 2, BLOCK])
            store.add(prompt)
            model[prompt.id] = prompt
        elif roll < 0.8:
            pending = [i for i, p in model.items() if p.state is PromptState.PENDING]
            if pending:
                held = store[rng.choice(pending)]
                assert held is model[held.id]  # an open prompt is changed in place
                held.state = rng.choice(_CLOSED)
                held.answer = _text(rng)
        else:
            gone = rng.sample(sorted(model), min(len(model), rng.randint(0, 3)))
            store.drop([*gone, next_id + 10])  # an unknown id is passed over
            for prompt_id in gone:
                del model[prompt_id]
        packed_seen = max(packed_seen, store.packed)
        assert len(store) == len(model)
    store.pack_closed()
    for prompt_id in range(next_id + 1):
        assert store.get(prompt_id) == model.get(prompt_id)
    with pytest.raises(KeyError):
        store[next_id + 1]
    assert packed_seen > 0 and store.packed > 0
    assert all(store[i] is p for i, p in model.items() if p.state is PromptState.PENDING)


def test_a_block_with_an_open_prompt_or_that_still_takes_ids_stays_loose() -> None:
    store = PromptStore(pack_every=1)
    rng = random.Random(1)
    for prompt_id in range(3 * BLOCK - 1):
        state = PromptState.PENDING if prompt_id == BLOCK + 5 else PromptState.ANSWERED
        store.add(random_prompt(rng, prompt_id, state))
    store.pack_closed()
    assert store.packed == BLOCK  # block 0 only: block 1 waits on a question, block 2 is open
    store[BLOCK + 5].state = PromptState.CANCELLED
    store.add(random_prompt(rng, 3 * BLOCK - 1, PromptState.ANSWERED))
    assert store.packed == 3 * BLOCK


def asked_and_answered(registry: Registry, count: int, start: int = 0) -> dict[int, Prompt]:
    """`count` external tasks each asking one question, answered (odd ones with a reason
    and an action), most finished; returns each closed prompt as its event carried it."""
    closed: dict[int, Prompt] = {}
    registry.listen(lambda e: isinstance(e.body, PromptClosed)
                    and closed.__setitem__(e.body.prompt.task_id, e.body.prompt))
    for n in range(start, start + count):
        task = registry.open_external(f"task {n}")
        action = Action(agent="claude", tool="Bash", input={"command": f"make {n}"})
        prompt = registry.open_prompt(task.id, Question(
            text=f"Run {n}?", choices=None if n % 3 else ["ship", "hold", "edit"],
            action=action if n % 2 else None))
        registry.answer(prompt.id, prompt.choices[n % 2], by=f"user {n % 4}",
                        reason=f"because {n}" if n % 2 else None)
        if n % 7:  # the others go on running, their question answered
            registry.finish(task.id, "ok")
    return closed


async def test_a_registry_reads_packed_history_as_it_was_answered() -> None:
    registry = Registry(clock=ManualClock(1000.0))
    count = PACK_EVERY + 3 * BLOCK
    closed = asked_and_answered(registry, count)
    assert registry._prompts.packed > PACK_EVERY // 2
    for task_id, prompt in closed.items():
        assert registry.prompts_of(task_id) == [prompt]
        assert registry.get_prompt(prompt.id) == prompt
    first = min(closed)  # still running, its question long packed
    old = closed[first]
    with pytest.raises(AlreadyAnswered, match=f"answered '{old.answer}' by {old.answered_by}"):
        registry.answer(closed[first].id, "hold")
    with pytest.raises(AlreadyAnswered, match="already answered"):
        registry.prompt_to_answer(first, None)
    # Evicting unpacks the blocks it touches; the rest still reads back equal.
    gone = set(registry.evict(t for t in closed if t % 5 == 0))
    assert gone
    for task_id, prompt in closed.items():
        if task_id in gone:
            with pytest.raises(UnknownPrompt):
                registry.get_prompt(prompt.id)
        else:
            assert registry.prompts_of(task_id) == [prompt]
    await registry.close()


async def test_a_task_that_asks_again_keeps_every_question_in_order() -> None:
    registry = Registry(clock=ManualClock(1000.0))
    asked_and_answered(registry, PACK_EVERY + BLOCK)  # so the first block below packs
    task = registry.open_external("asks three times")
    asked = []
    for n in range(3):
        prompt = registry.open_prompt(task.id, f"step {n}?")
        asked.append(registry.answer(prompt.id, "approve"))
    asked_and_answered(registry, PACK_EVERY + BLOCK)
    assert registry.get_prompt(asked[0].id) == asked[0] and registry._prompts.packed
    assert registry.prompts_of(task.id) == asked
    await registry.close()


async def test_restored_history_is_packed_and_reads_back_equal() -> None:
    source = Registry(clock=ManualClock(1000.0))
    closed = asked_and_answered(source, PACK_EVERY + 2 * BLOCK)
    pending_task = source.open_external("still asking")
    pending = source.open_prompt(pending_task.id, "Go?")
    tasks = source.list(limit=None)
    prompts = [*closed.values(), pending]
    restored = Registry(clock=ManualClock(2000.0))
    restored.restore(tasks, prompts)
    assert restored._prompts.packed > 0
    for task_id, prompt in closed.items():
        assert restored.prompts_of(task_id) == [prompt]
    assert restored.pending_prompts() == [pending]
    answered = restored.answer(pending.id, "deny")
    assert restored.prompts_of(pending_task.id) == [answered]
    await source.close()
    await restored.close()
