"""Rules in the registry, with no sockets: they decide questions with actions before a person
is asked, through the same recorded path as a person's answer, and survive a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.errors import BadRequest, UnknownRule, UnknownTask
from core.journal import SCHEMA_VERSION, Journal, JournalError
from core.model import (
    Action,
    PromptClosed,
    PromptOpened,
    PromptState,
    Question,
    TaskStatus,
    Verdict,
)
from core.registry import Registry


def bash(command: str, session: str | None = "S1", agent: str = "claude") -> Action:
    return Action(agent=agent, tool="Bash", input={"command": command}, cwd="/repo",
                  session=session)


def ask(registry: Registry, task_id: int, action: Action | None, text: str = "Run it?"):
    return registry.open_prompt(task_id, Question(text=text, action=action))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
async def registry(clock: ManualClock):
    registry = Registry(clock=clock)
    yield registry
    await registry.close()


async def test_an_allow_rule_approves_at_once_and_names_itself(registry: Registry) -> None:
    events = []
    registry.listen(events.append)
    session = registry.open_external("claude session", agent="claude", lease=60)
    rule = registry.add_rule("allow", "Bash(npm test *)", session="S1")
    prompt = ask(registry, session.id, bash("npm test -- --watch"))
    assert prompt.state is PromptState.ANSWERED and prompt.verdict is Verdict.APPROVED
    assert prompt.answered_by == f"rule {rule.id}"
    assert prompt.reason == f"approved by rule {rule.id}: Bash(npm test *)"
    assert registry.get(session.id).status is TaskStatus.IN_PROGRESS
    kinds = [type(e.body) for e in events[-2:]]
    assert kinds == [PromptOpened, PromptClosed]  # seen opening, then closed by the rule
    [held] = registry.list_rules()
    assert (held.hits, held.last_used) == (1, registry.clock())


async def test_a_deny_rule_denies_and_the_agent_reads_why(registry: Registry) -> None:
    session = registry.open_external("s", agent="claude", lease=60)
    registry.add_rule("allow", "Bash(*)", everything=True)
    rule = registry.add_rule("deny", "Bash(curl *)")
    prompt = ask(registry, session.id, bash("npm test && curl x | sh"))
    assert prompt.verdict is Verdict.DENIED and prompt.answer == "deny"
    assert prompt.reason == f"denied by rule {rule.id}: Bash(curl *)"


async def test_an_awaiting_asker_gets_the_rules_answer_in_the_same_step(
    registry: Registry,
) -> None:
    session = registry.open_external("s", agent="claude", lease=60)
    registry.add_rule("allow", "Bash(ls *)")
    answered = await registry.ask_prompt(session.id, Question(text="ls?", action=bash("ls -l")))
    assert answered.verdict is Verdict.APPROVED


@pytest.mark.parametrize(("action", "why"), [
    (None, "a plain question is never decided by a rule"),
    (bash("npm test && curl x"), "one part is not allowed"),
    (bash("npm test", session="S2"), "another session"),
    (bash("npm test", agent="codex"), "the rule is for claude"),
    (bash("npm publish"), "an ask rule sends it to a person"),
])
async def test_what_stays_with_a_person(registry: Registry, action: Action | None,
                                        why: str) -> None:
    session = registry.open_external("s", agent="claude", lease=60)
    registry.add_rule("allow", "Bash(npm *)", session="S1", agent="claude")
    registry.add_rule("ask", "Bash(npm publish *)")
    prompt = ask(registry, session.id, action, text="npm test?")
    assert prompt.state is PromptState.PENDING, why


async def test_a_subtree_rule_covers_the_task_and_its_descendants_only(
    registry: Registry,
) -> None:
    root = registry.open_external("root", agent="claude", lease=60)
    child = registry.open_external("child", agent="claude", parent_id=root.id, lease=60)
    other = registry.open_external("other", agent="claude", lease=60)
    registry.add_rule("allow", "Bash(make *)", task_id=root.id)
    assert ask(registry, child.id, bash("make")).state is PromptState.ANSWERED
    assert ask(registry, other.id, bash("make")).state is PromptState.PENDING
    with pytest.raises(UnknownTask):
        registry.add_rule("allow", "Bash(make *)", task_id=999)


async def test_an_expired_rule_decides_nothing(registry: Registry, clock: ManualClock) -> None:
    session = registry.open_external("s", agent="claude", lease=600)
    registry.add_rule("allow", "Bash(ls *)", expires=60)
    clock.advance(59)
    assert ask(registry, session.id, bash("ls")).state is PromptState.ANSWERED
    clock.advance(2)
    assert ask(registry, session.id, bash("ls")).state is PromptState.PENDING


async def test_a_new_rule_decides_the_questions_already_waiting(registry: Registry) -> None:
    one = registry.open_external("a", agent="claude", lease=60)
    two = registry.open_external("b", agent="claude", lease=60)
    first = ask(registry, one.id, bash("npm test"))
    second = ask(registry, two.id, bash("npm test; curl x"))
    registry.add_rule("allow", "Bash(npm test *)")
    assert registry.get_prompt(first.id).verdict is Verdict.APPROVED
    assert registry.get_prompt(second.id).state is PromptState.PENDING


async def test_choices_without_a_plain_deny_stay_with_a_person(registry: Registry) -> None:
    session = registry.open_external("s", agent="claude", lease=60)
    registry.add_rule("deny", "Bash(rm *)")
    prompt = registry.open_prompt(session.id, Question(
        text="?", choices=["run", "now", "later"], action=bash("rm x")))
    assert prompt.state is PromptState.PENDING
    refusing = registry.open_external("r", agent="claude", lease=60)
    three_way = registry.open_prompt(refusing.id, Question(
        text="?", choices=["run", "skip", "later"], action=bash("rm x")))
    assert (three_way.answer, three_way.verdict) == ("skip", Verdict.DENIED)
    other = registry.open_external("t", agent="claude", lease=60)
    two_way = registry.open_prompt(other.id, Question(
        text="?", choices=["yes", "no"], action=bash("rm x")))
    assert (two_way.answer, two_way.verdict) == ("no", Verdict.DENIED)


@pytest.mark.parametrize(("call", "error"), [
    (lambda r: r.add_rule("maybe", "Bash(ls)"), BadRequest),
    (lambda r: r.add_rule("allow", "Bash(ls"), BadRequest),
    (lambda r: r.add_rule("allow", "Bash"), BadRequest),
    (lambda r: r.add_rule("allow", "Bash(ls)", session="x", task_id=1), BadRequest),
    (lambda r: r.add_rule("allow", "Bash(ls)", expires=0), BadRequest),
    (lambda r: r.remove_rule(42), UnknownRule),
])
async def test_bad_rules_change_nothing(registry: Registry, call, error) -> None:
    registry.open_external("s", lease=60)
    with pytest.raises(error):
        call(registry)
    assert registry.list_rules() == []


async def test_an_unrecordable_rule_decision_leaves_the_question_to_a_person(
    registry: Registry,
) -> None:
    session = registry.open_external("s", agent="claude", lease=60)
    registry.add_rule("allow", "Bash(ls *)")

    def broken(action: str, **fields: object) -> None:
        raise JournalError("disk full")

    registry.recorder = broken
    prompt = ask(registry, session.id, bash("ls"))
    assert prompt.state is PromptState.PENDING
    assert registry.list_rules()[0].hits == 0


# ----------------------------------------------------------------- journal


def _daemonless(journal_path: Path, clock: ManualClock) -> tuple[Journal, Registry]:
    journal = Journal.open(journal_path)
    registry = Registry(clock=clock, first_id=journal.next_id())
    journal.attach(registry)
    registry.restore(*journal.load())
    registry.restore_rules(*journal.rules())
    registry.recorder = journal.record
    return journal, registry


async def test_rules_survive_a_restart_and_their_changes_are_audited(
    tmp_path: Path, clock: ManualClock,
) -> None:
    path = tmp_path / "journal.sqlite3"
    journal, first = _daemonless(path, clock)
    session = first.open_external("s", agent="claude", lease=60)
    kept = first.add_rule("allow", "Bash(npm test *)", by="cli:ana@box")
    gone = first.add_rule("deny", "Bash(rm *)", by="cli:ana@box")
    first.remove_rule(gone.id, by="tui:bo@box")
    decided = ask(first, session.id, bash("npm test"))
    journal.detach()
    await first.close()
    journal.close()

    again, second = _daemonless(path, clock)
    try:
        [rule] = second.list_rules()
        assert (rule.id, rule.pattern, rule.hits, rule.added_by) == (
            kept.id, "Bash(npm test *)", 1, "cli:ana@box")
        assert second.add_rule("ask", "Bash(git push *)").id == gone.id + 1  # ids never reused
        history = again.history()
        assert [(h.action, h.by) for h in history] == [
            ("rule_add", "cli:ana@box"), ("rule_add", "cli:ana@box"),
            ("rule_remove", "tui:bo@box"), ("answer", f"rule {kept.id}"),
            ("rule_add", "user"),
        ]
        assert history[3].prompt_id == decided.id
        assert history[3].detail == f"approve: approved by rule {kept.id}: Bash(npm test *)"
        assert history[3].summary == "npm test"
    finally:
        again.detach()
        await second.close()
        again.close()


async def test_a_journal_of_schema_3_is_upgraded_with_an_empty_rules_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    Journal.open(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE rules")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    journal = Journal.open(path)
    try:
        assert journal.rules() == ([], 1)
        version = journal._db.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION >= 4  # 4 added the rules table
    finally:
        journal.close()

