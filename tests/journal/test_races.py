"""Races over real sockets: two people answering one prompt, abort against answer, late answers."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.client import Client
from core.errors import AlreadyAnswered, NotPending
from core.assembly import Assembly
from core.journal import Journal
from core.model import EndReason, PromptState, TaskStatus
from core.registry import Registry
from tests.support import until

ROUNDS = 40
"""Times each race is run; the daemon's order differs from round to round."""


@dataclass
class Deck:
    registry: Registry
    journal: Journal
    alice: Client
    bob: Client


@pytest.fixture
async def deck(tmp_path: Path) -> AsyncIterator[Deck]:
    async with Assembly(lambda first_id: Registry(first_id=first_id), runtime_dir=tmp_path / "run",
                        journal=tmp_path / "state" / "journal.sqlite3") as assembled:
        assert assembled.journal is not None
        async with Client(tmp_path / "run", client_name="tui") as alice, \
                Client(tmp_path / "run", client_name="cli") as bob:
            yield Deck(assembled.registry, assembled.journal, alice, bob)


def answers_of(journal: Journal, prompt_id: int) -> list[str]:
    return [e.detail for e in journal.history() if e.prompt_id == prompt_id]


async def test_two_dashboards_answer_one_prompt(deck: Deck, figures: dict) -> None:
    winners: collections.Counter[str] = collections.Counter()
    for round_ in range(ROUNDS):
        task = deck.registry.open_external(f"deploy {round_}", lease=600)
        prompt = deck.registry.open_prompt(task.id, "Deploy?")
        # Alternate who sends first so both orders are tried.
        first, second = (deck.alice, deck.bob) if round_ % 2 else (deck.bob, deck.alice)
        results = await asyncio.gather(
            first.answer(prompt.id, "approve"),
            second.answer(prompt.id, "deny"),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], AlreadyAnswered)
        assert won[0].answer in str(lost[0])  # the loser is told what the answer was
        stored = deck.registry.get_prompt(prompt.id)
        assert stored.answer == won[0].answer
        assert answers_of(deck.journal, prompt.id) == [won[0].answer]  # one decision recorded
        winners[won[0].answered_by.split(":")[0]] += 1
    figures["race: two answers"] = {"rounds": ROUNDS, "won by": dict(winners)}


async def test_abort_while_an_answer_is_in_flight(deck: Deck, figures: dict) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    for round_ in range(ROUNDS):
        task = deck.registry.open_external(f"migrate {round_}", lease=600)
        prompt = deck.registry.open_prompt(task.id, "Migrate?")
        calls = [deck.alice.answer(prompt.id, "approve"), deck.bob.abort(task.id)]
        if round_ % 2:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        answer, aborted = results if not round_ % 2 else results[::-1]
        assert aborted == [task.id]  # the abort always ends the task
        ended = deck.registry.get(task.id)
        assert (ended.status, ended.end_reason) == (TaskStatus.FAILED, EndReason.ABORTED)
        stored = deck.registry.get_prompt(prompt.id)
        actions = [e.action for e in deck.journal.history(task_id=task.id)]
        if isinstance(answer, BaseException):
            # The abort came first: the prompt was cancelled, not answered, not "already answered".
            assert type(answer) is NotPending, answer
            assert stored.state is PromptState.CANCELLED
            assert actions == ["abort"]
            outcomes["abort first"] += 1
        else:
            # The answer came first, then the abort ended the resumed task.
            assert stored.state is PromptState.ANSWERED and stored.answer == "approve"
            assert actions == ["answer", "abort"]
            outcomes["answer first"] += 1
    figures["race: abort vs answer"] = {"rounds": ROUNDS, **outcomes}


async def test_answer_to_a_timed_out_prompt_is_refused(deck: Deck) -> None:
    task = deck.registry.open_external("late", lease=600)
    prompt = deck.registry.open_prompt(task.id, "Quick?", timeout=0.05)
    await until(lambda: deck.registry.get_prompt(prompt.id).state is PromptState.TIMED_OUT)
    with pytest.raises(NotPending, match="timed out") as caught:
        await deck.alice.answer(prompt.id, "approve")
    assert type(caught.value) is NotPending  # not "already answered": nobody answered it
    assert deck.registry.get_prompt(prompt.id).answer is None
    assert answers_of(deck.journal, prompt.id) == []
    # The task asks again; the late answer did not land on the new question.
    again = deck.registry.open_prompt(task.id, "Now?")
    assert deck.registry.get_prompt(again.id).state is PromptState.PENDING
    answered = await deck.bob.answer_task(task.id, "approve")
    assert answered.id == again.id
