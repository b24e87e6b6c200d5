"""The one rule for what an answer decides (`Prompt.judge`): a choice that reads as a
refusal never approves, however many choices are offered."""

from __future__ import annotations

import pytest

from core.model import EDIT, REFUSALS, Prompt, Verdict, reads_as_refusal

A, D, R = Verdict.APPROVED, Verdict.DENIED, Verdict.REPLIED


@pytest.mark.parametrize(
    ("choices", "answer", "verdict"),
    [
        # the default pair, and "deny" listed or not
        (["approve", "deny"], "approve", A),
        (["approve", "deny"], "deny", D),
        (["approve", "deny"], "DENY", D),
        (["yes", "no"], "deny", D),
        # three or more choices: a refusal never approves, wherever it stands
        (["yes", "no", "cancel"], "yes", A),
        (["yes", "no", "cancel"], "no", D),
        (["yes", "no", "cancel"], "cancel", D),
        (["Yes", "No", "Cancel"], "No", D),
        (["staging", "production", "skip"], "staging", A),
        (["staging", "production", "skip"], "production", A),
        (["staging", "production", "skip"], "skip", D),
        (["main", "release/2.4", "cancel"], "release/2.4", A),
        (["retry", "abort", "ignore"], "abort", D),
        (["merge", "reject", "defer"], "reject", D),
        (["accept", "decline", "later"], "decline", D),
        (["go", "stop", "pause"], "stop", D),
        (["go", "no, keep it", "later"], "no, keep it", D),
        (["go", "Don\u2019t deploy", "later"], "Don\u2019t deploy", D),
        (["go", "do not touch", "later"], "do not touch", D),
        (["go", "no-go", "later"], "no-go", D),
        (["us", "eu", "asia"], "asia", A),
        # two choices: the second refuses, unless the first already does
        (["ship", "hold"], "hold", D),
        (["ship", "hold"], "ship", A),
        (["cancel", "proceed"], "proceed", A),
        (["cancel", "proceed"], "cancel", D),
        (["no", "cancel"], "cancel", D),
        (["approve", EDIT], EDIT, A),
        # one choice
        (["ok"], "ok", A),
        (["abort"], "abort", D),
        # words that only start like a refusal are no refusal
        (["notify", "nothing"], "notify", A),
        (["now", "stopwatch", "none of it"], "stopwatch", A),
        (["now", "stopwatch", "none of it"], "none of it", D),
        # free text is a reply, never an approval, even when it reads as one
        (["yes", "no"], "yes please", R),
        (["yes", "no", "cancel"], "sure", R),
        (["approve", "deny"], "no", R),
    ],
)
def test_the_verdict_table(choices: list[str], answer: str, verdict: Verdict) -> None:
    prompt = Prompt(id=1, task_id=1, question="q", choices=choices, answer=answer)
    assert Prompt.judge(choices, answer) is verdict
    assert prompt.verdict is verdict
    assert prompt.is_denial is (verdict is D)


def test_every_refusal_word_refuses_in_any_case_among_three_choices() -> None:
    for word in REFUSALS:
        for shown in (word, word.upper(), word.capitalize()):
            choices = ["go", "later", shown]
            assert Prompt.judge(choices, shown) is D, shown
            assert reads_as_refusal(f"{shown} thanks"), shown


@pytest.mark.parametrize(
    ("choices", "denial"),
    [
        (["approve", "deny"], "deny"),
        (["yes", "no", "cancel"], "no"),
        (["staging", "production", "skip"], "skip"),
        (["cancel", "proceed"], "cancel"),
        (["ship", "hold"], "hold"),
        (["us", "eu", "asia"], None),
        (["approve", EDIT], None),
        (["ok"], None),
    ],
)
def test_the_choice_that_refuses(choices: list[str], denial: str | None) -> None:
    assert Prompt.denial_among(choices) == denial


def test_an_unanswered_prompt_has_no_verdict() -> None:
    prompt = Prompt(id=1, task_id=1, question="q", choices=["yes", "no"])
    assert prompt.verdict is None
    assert not prompt.is_denial
