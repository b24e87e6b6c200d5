"""`taskdeck ask` as a hook runs it: its exit code is the decision, and nothing else approves."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.cli.conftest import Deck

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("choices", "answer", "code", "result"),
    [
        (None, "approve", 0, "approve"),
        (None, "deny", 1, "denied: deny"),
        (None, "no", 3, "replied: no"),
        (None, "n", 3, "replied: n"),
        (None, "yes", 3, "replied: yes"),
        ("yes,no", "yes", 0, "yes"),
        ("yes,no", "no", 1, "denied: no"),
        ("eu,us,ap", "ap", 0, "ap"),
        ("yes,no,cancel", "yes", 0, "yes"),
        ("yes,no,cancel", "no", 1, "denied: no"),
        ("yes,no,cancel", "cancel", 1, "denied: cancel"),
        ("Deploy,Skip,Later", "Skip", 1, "denied: Skip"),
        ("cancel,proceed", "proceed", 0, "proceed"),
        ("cancel,proceed", "cancel", 1, "denied: cancel"),
    ],
)
def test_the_exit_code_is_what_the_answer_decided(
    deck: Deck, choices: str | None, answer: str, code: int, result: str
) -> None:
    """Only a listed choice approves; a typed "no" or "yes" is a reply (3), never a 0."""
    extra = ["--choices", choices] if choices else []
    asker = deck.start("ask", "Deploy to prod?", *extra)
    task_id, _ = deck.asked(asker)
    assert deck.run("answer", str(task_id), answer).returncode == 0
    out, err = asker.communicate(timeout=15)
    assert asker.returncode == code, err
    assert out == f"{answer}\n"
    [task] = [t for t in deck.tasks() if t["id"] == task_id]
    assert (task["status"], task["result"], task["error"]) == ("finished", result, None)


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("no", "no (a free reply, not one of approve / deny: it neither approves nor denies)"),
        ("approve", "approve (approved)"),
        ("deny", "deny (denied)"),
    ],
)
def test_answer_says_what_the_answer_decided(deck: Deck, answer: str, said: str) -> None:
    """The person who typed "no" learns at once that it was taken as a reply, not a denial."""
    asker = deck.start("ask", "Deploy to prod?")
    task_id, _ = deck.asked(asker)
    answered = deck.run("answer", str(task_id), answer)
    assert answered.stdout.strip().endswith(f": {said}"), answered.stdout
    asker.communicate(timeout=15)


def test_a_typed_no_does_not_run_the_command_after_it(deck: Deck, tmp_path) -> None:
    """The line hooks are written with: `ask ... && ./deploy.sh`."""
    deployed = tmp_path / "deployed"
    hook = subprocess.Popen(
        ["sh", "-c", f'"$0" -m core.cli ask "Deploy to prod?" && touch {deployed}', deck.python],
        env=deck.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    task_id, _ = deck.asked(hook)
    deck.run("answer", str(task_id), "no")
    out, _ = hook.communicate(timeout=15)
    assert hook.returncode == 3 and out == "no\n"
    assert not deployed.exists()


def test_a_denial_shows_its_reason_and_ends_the_task_as_finished(deck: Deck) -> None:
    """A denied ask is an answer, not a crash: no red "failed" for it in `ls` or the dashboard."""
    asker = deck.start("ask", "Drop the table?")
    task_id, _ = deck.asked(asker)
    deck.run("answer", str(task_id), "deny", "--reason", "not on a Friday")
    out, err = asker.communicate(timeout=15)
    assert asker.returncode == 1 and out == "deny\n"
    assert "reason: not on a Friday" in err
    [task] = [t for t in deck.tasks() if t["id"] == task_id]
    assert (task["status"], task["result"]) == ("finished", "denied: not on a Friday")


def test_ask_says_how_to_answer_it_while_it_waits(deck: Deck) -> None:
    asker = deck.start("ask", "Which region?", "--choices", "eu,us")
    task_id, line = deck.asked(asker)
    assert line == (
        f"taskdeck: asked as task {task_id} (answer with: taskdeck answer {task_id} eu|us)"
    )
    deck.run("answer", str(task_id), "eu")
    assert asker.wait(timeout=15) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT])
def test_a_signal_closes_the_question_at_once(deck: Deck, sig: signal.Signals) -> None:
    """Hook runners kill on timeout: once `ask` is gone, nobody may answer it any more."""
    asker = deck.start("ask", "Force-push main?")
    task_id, _ = deck.asked(asker)
    asker.send_signal(sig)
    _, err = asker.communicate(timeout=10)
    assert asker.returncode == 2
    assert err.strip() == f"taskdeck: interrupted by {sig.name}; the question is closed"
    # At once, not when the lease lapses: the answer is refused right after `ask` exits.
    late = deck.run("answer", str(task_id), "approve")
    assert late.returncode == 2
    assert "has ended (failed); there is no question to answer" in late.stderr
    [task] = [t for t in deck.tasks() if t["id"] == task_id]
    assert task["status"] == "failed" and sig.name in task["error"]
    assert task["end_reason"] == "error"


def test_the_timeout_holds_when_the_daemon_is_stopped(deck: Deck) -> None:
    """A stopped daemon cannot time the question out; `ask` keeps its own clock."""
    asker = deck.start("ask", "Rotate the keys?", "--timeout", "2")
    deck.asked(asker)
    deck.process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        _, err = asker.communicate(timeout=15)
    finally:
        deck.process.send_signal(signal.SIGCONT)
    waited = time.monotonic() - started
    assert asker.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "taskdeck: no answer within 2s (and no word from the daemon)"
    )
    assert waited < 2 + 0.5 + 1.5 + 1.0, waited  # timeout + grace + bounded cleanup + slack


def test_the_timeout_holds_when_the_daemon_is_stopped_before_asking(deck: Deck) -> None:
    deck.process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        result = deck.run("ask", "Anyone?", "--timeout", "1.5")
    finally:
        deck.process.send_signal(signal.SIGCONT)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "taskdeck: no answer within 1.5s (the daemon did not respond)"
    )
    assert time.monotonic() - started < 1.5 + 3, "the command overran its timeout"
