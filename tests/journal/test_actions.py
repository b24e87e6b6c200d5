"""Actions and external keys in the journal: kept across a restart, in history, and absent
from rows written before they existed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from core.journal import Journal
from core.model import Action, PromptState, Question, TaskStatus
from core.registry import Registry

BASH = Action(agent="claude", tool="Bash", input={"command": "rm -rf build/"}, cwd="/repo",
              session="S1")


async def test_a_key_and_an_action_are_restored_and_the_decision_names_the_action(
    journal_path: Path,
) -> None:
    journal = Journal.open(journal_path)
    first = Registry()
    journal.attach(first)
    session = first.open_external("claude session", agent="claude", key="claude:S1", lease=60)
    answered = first.open_prompt(session.id, Question(text="Run it?", action=BASH))
    first.recorder = journal.record
    first.answer(answered.id, "approve", by="tui:ana@box")
    pending = first.open_prompt(session.id, Question(text="Again?", action=BASH))
    journal.detach()
    await first.close()
    journal.close()

    again = Journal.open(journal_path)
    second = Registry(first_id=again.next_id())
    again.attach(second)
    second.restore(*again.load())
    try:
        assert second.open_external("claude session, later", key="claude:S1").id == session.id
        assert [p.action for p in second.prompts_of(session.id)] == [BASH, BASH]
        restored = second.get_prompt(pending.id)
        assert restored.state is PromptState.PENDING and restored.action == BASH
        [decision] = again.history(task_id=session.id)
        assert (decision.question, decision.summary) == ("Run it?", "rm -rf build/")
        second.finish(session.id, "done")
        assert second.get(session.id).status is TaskStatus.FINISHED
        assert second.open_external("a new session", key="claude:S1").id != session.id
    finally:
        again.detach()
        await second.close()
        again.close()


async def test_rows_written_before_keys_and_actions_load_without_them(
    journal_path: Path,
) -> None:
    journal = Journal.open(journal_path)
    registry = Registry()
    journal.attach(registry)
    task = registry.open_external("old reporter", lease=60)
    registry.open_prompt(task.id, "Go?")
    journal.detach()
    await registry.close()
    journal.close()
    db = sqlite3.connect(journal_path)
    for table, dropped in (("tasks", "key"), ("prompts", "action")):
        for row_id, record in db.execute(f"SELECT id, record FROM {table}").fetchall():
            old = msgspec.msgpack.decode(record)
            assert dropped in old
            del old[dropped]  # as an older taskdeck wrote it
            db.execute(f"UPDATE {table} SET record=? WHERE id=?",
                       (msgspec.msgpack.encode(old), row_id))
    db.commit()
    db.close()
    with Journal.open(journal_path) as reopened:
        [loaded], [prompt] = reopened.load()
    assert (loaded.id, loaded.key) == (task.id, None)
    assert (prompt.question, prompt.action) == ("Go?", None)

