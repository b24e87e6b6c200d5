"""`taskdeck rules` against a real daemon: add, list, test, remove; a rule decides a real
question over the wire; rules and their audit survive a restart; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import protocol as p
from core.client import SyncClient
from core.model import Action, Question
from tests.cli.conftest import Deck, one_line_error, usage_error
from tests.support import until_sync

pytestmark = pytest.mark.timeout(90)


def ok(deck: Deck, *args: str) -> str:
    ran = deck.run(*args)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_add_list_test_and_remove(journaled: Deck) -> None:
    deck = journaled
    assert ok(deck, "rules", "ls") == "no rules\n"
    added = ok(deck, "rules", "add", "allow", "Bash(npm test *)", "--session", "S1",
               "--expires", "2h")
    assert added.startswith("added rule 1: allow Bash(npm test *), session S1, until ")
    ok(deck, "rules", "add", "deny", "Bash(curl *)", "--agent", "claude")

    listed = json.loads(ok(deck, "rules", "ls", "--json"))
    assert [(r["id"], r["effect"], r["pattern"], r["scope"], r["expired"]) for r in listed] == [
        (1, "allow", "Bash(npm test *)", "session S1", False),
        (2, "deny", "Bash(curl *)", "everywhere", False),
    ]
    assert listed[0]["added_by"].startswith("cli:")
    assert json.loads(ok(deck, "rules", "ls", "--json", "--agent", "codex"))[0]["id"] == 1

    allowed = deck.run("rules", "test", "Bash(npm test -- --watch)", "--session", "S1")
    assert (allowed.returncode, allowed.stdout) == (
        0, "allow: rule 1 (Bash(npm test *), session S1) allows npm test -- --watch\n")
    denied = deck.run("rules", "test", "Bash(npm test && curl x | sh)", "--session", "S1")
    assert denied.returncode == 1
    assert denied.stdout.startswith("deny: rule 2 (Bash(curl *), everywhere) denies curl x")
    other = deck.run("rules", "test", "Bash(npm test)", "--session", "S2")
    assert (other.returncode, other.stdout) == (3, "ask a person: no rule matches\n")

    assert ok(deck, "rules", "rm", "2") == "removed rule 2: deny Bash(curl *) for claude, everywhere\n"
    assert [r["id"] for r in json.loads(ok(deck, "rules", "ls", "--json"))] == [1]


BAD_INPUT = [
    (("rules", "add", "allow", "Bash(npm test"), "missing the closing ')'"),
    (("rules", "add", "allow", "Bash"), "--everything"),
    (("rules", "add", "deny", "Task(x)"), "Task takes no specifier"),
    (("rules", "rm", "7"), "no rule 7"),
    (("rules", "test", "npm test"), "write the action as Tool(input)"),
    (("rules", "add", "allow", "Bash(ls)", "--task", "99"), "no task 99"),
]


def test_bad_input_is_one_line_and_changes_nothing(journaled: Deck) -> None:
    for args, says in BAD_INPUT:
        ran = journaled.run(*args)
        assert ran.returncode == 2, args
        assert says in one_line_error(ran), args
    assert ok(journaled, "rules", "ls") == "no rules\n"
    assert "no decisions recorded" in ok(journaled, "history")


@pytest.mark.parametrize("args", [
    ("rules", "add", "maybe", "Bash(ls)"),
    ("rules", "add", "allow", "Bash(ls)", "--session", "a", "--task", "1"),
    ("rules", "add", "allow", "Bash(ls)", "--expires", "soon"),
    ("rules", "rm", "x"),
])
def test_usage_mistakes_are_one_line(tmp_path: Path, args) -> None:
    usage_error(Deck(tmp_path).run(*args))


def test_a_rule_decides_a_question_over_the_wire_and_history_names_it(
    journaled: Deck, tmp_path: Path,
) -> None:
    deck = journaled
    ok(deck, "rules", "add", "allow", "Bash(npm test *)", "--session", "S1")
    with SyncClient(runtime_dir=deck.runtime_dir, state_dir=tmp_path / "state") as client:
        task = client.open_task("claude session", agent="claude", lease=60)
        action = Action(agent="claude", tool="Bash", input={"command": "npm test"},
                        session="S1")
        answered = task.ask(Question(text="Run npm test?", action=action, timeout=30))
        assert (answered.answer, answered.answered_by) == ("approve", "rule 1")
        other = Action(agent="claude", tool="Bash", input={"command": "npm test"},
                       session="S2")
        pending = client.request(p.Ask.of(task.id, Question(text="And here?", action=other)))
        assert pending.prompt.state.value == "pending"  # another session is still asked
        assert deck.run("answer", str(task.id), "deny").returncode == 0
        task.finish("done")

    history = ok(deck, "history")
    assert "approve: approved by rule 1: Bash(npm test *)  by rule 1" in history
    assert "rule_add" in history and "allow Bash(npm test *)" in history
    [rule] = json.loads(ok(deck, "rules", "ls", "--json"))
    assert rule["hits"] == 1 and rule["last_used"] is not None


def test_rules_survive_a_restart(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    journal = str(tmp_path / "journal.sqlite3")
    deck.serve("--journal", journal)
    try:
        ok(deck, "rules", "add", "deny", "Bash(rm *)")
        ok(deck, "rules", "add", "allow", "Read(./docs/**)")
        ok(deck, "rules", "rm", "1")
    finally:
        deck.stop()
    deck.serve("--journal", journal)
    try:
        listed = json.loads(ok(deck, "rules", "ls", "--json"))
        assert [(r["id"], r["pattern"]) for r in listed] == [(2, "Read(./docs/**)")]
        assert ok(deck, "rules", "add", "ask", "Bash(git push *)").startswith("added rule 3:")
        until_sync(lambda: "rule_remove" in ok(deck, "history"), what="the audit")
    finally:
        deck.stop()
