"""Schemas 5 and 6: a decision's commit touches few pages, and older files are upgraded
in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import core.journal
from core import protocol as p
from core.journal import SCHEMA_VERSION, Journal
from core.service import CommandService
from tests.journal.test_group_commit import asked, request
from tests.journal.test_journal import rows
from tests.wire.test_service import journaled  # noqa: F401  (the fixture)

PAGE = 4096
WAL_FRAME = PAGE + 24  # each page appended to the WAL has a 24-byte frame header

TABLES_4_5 = """
CREATE TABLE tasks (id INTEGER PRIMARY KEY, record BLOB NOT NULL, status TEXT NOT NULL,
    ended_at REAL, parent_id INTEGER, evicted_at REAL);
CREATE INDEX tasks_parent ON tasks(parent_id);
CREATE TABLE prompts (id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, record BLOB NOT NULL,
    state TEXT NOT NULL);
CREATE INDEX prompts_task ON prompts(task_id);
CREATE TABLE audit (id INTEGER PRIMARY KEY {audit_id}, ts REAL NOT NULL, epoch INTEGER,
    action TEXT NOT NULL, task_id INTEGER, prompt_id INTEGER, detail TEXT NOT NULL,
    by TEXT NOT NULL, user TEXT, host TEXT, pid INTEGER, client TEXT, curve_key TEXT,
    question TEXT, summary TEXT);
CREATE INDEX audit_task ON audit(task_id);
CREATE TABLE audit_tasks (audit_id INTEGER NOT NULL, task_id INTEGER NOT NULL,
    PRIMARY KEY (audit_id, task_id)) WITHOUT ROWID;
CREATE INDEX audit_tasks_task ON audit_tasks(task_id);
CREATE TABLE runs (epoch INTEGER PRIMARY KEY, started_at REAL NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE rules (id INTEGER PRIMARY KEY, record BLOB NOT NULL, removed_at REAL);
"""
"""The tables schemas 4 and 5 share, as written (5 dropped audit's AUTOINCREMENT)."""

SCHEMA_4 = TABLES_4_5.format(audit_id="AUTOINCREMENT") + """
CREATE TABLE replies (seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,
    reply BLOB NOT NULL);
"""
"""The schema taskdeck wrote before version 5, as it wrote it."""


def write_schema_4(path: Path) -> None:
    """A version-4 file: an answer and an abort of a subtree (audit_tasks as 4 wrote it,
    its own task included), and remembered replies with a gap in their seq."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_4 + """
        INSERT INTO audit(ts, action, task_id, prompt_id, detail, by)
            VALUES (1.0, 'answer', 3, 4, 'approve', 'cli');
        INSERT INTO audit_tasks VALUES (1, 3);
        INSERT INTO audit(ts, action, task_id, prompt_id, detail, by)
            VALUES (2.0, 'abort', 5, NULL, 'subtree: ended 5, 6, 7', 'tui');
        INSERT INTO audit_tasks VALUES (2, 5), (2, 6), (2, 7);
        INSERT INTO replies(request_id, reply) VALUES ('r1', x'01'), ('r2', x'02'), ('r3', x'03');
        INSERT OR REPLACE INTO replies(request_id, reply) VALUES ('r1', x'11');
        PRAGMA user_version=4;
    """)
    db.close()


def test_a_schema_4_file_is_upgraded_and_keeps_its_history(journal_path: Path) -> None:
    write_schema_4(journal_path)
    with Journal.open(journal_path) as journal:
        assert [(d.action, d.task_id) for d in journal.history()] == [("answer", 3), ("abort", 5)]
        assert [d.action for d in journal.history(task_id=3)] == ["answer"]
        assert [d.action for d in journal.history(task_id=7)] == ["abort"]  # an abort's subtree
        # Oldest first, the retried r1 (re-remembered last) after r2 and r3.
        assert journal.replies() == [("r2", b"\x02"), ("r3", b"\x03"), ("r1", b"\x11")]
        journal.remember("r4", b"\x04")
        journal.audit("answer", task_id=9, prompt_id=10, detail="deny", by="cli", origin=None)
        journal.commit()
        assert journal.replies()[-2:] == [("r1", b"\x11"), ("r4", b"\x04")]
        assert [d.task_id for d in journal.history()] == [3, 5, 9]
    assert rows(journal_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    [(audit_sql,)] = rows(journal_path, "SELECT sql FROM sqlite_master WHERE name='audit'")
    assert "AUTOINCREMENT" not in audit_sql.upper()
    assert rows(journal_path, "SELECT name FROM sqlite_master WHERE name LIKE '%before%'") == []
    assert rows(journal_path, "SELECT name FROM sqlite_sequence") == []
    # A decision's own task is its audit row's task_id: only the abort's others stay.
    assert rows(journal_path, "SELECT * FROM audit_tasks ORDER BY task_id") == [(2, 6), (2, 7)]
    assert rows(journal_path, "SELECT id FROM audit ORDER BY id") == [(1,), (2,), (3,)]


SCHEMA_5 = TABLES_4_5.format(audit_id="") + """
CREATE TABLE replies (slot INTEGER PRIMARY KEY, seq INTEGER NOT NULL,
    request_id TEXT NOT NULL, reply BLOB NOT NULL);
"""
"""The schema taskdeck wrote as version 5, as it wrote it: every reply in the ring."""


def test_a_schema_5_file_is_upgraded_and_keeps_its_replies(journal_path: Path) -> None:
    journal_path.parent.mkdir(mode=0o700, exist_ok=True)
    db = sqlite3.connect(journal_path)
    db.executescript(SCHEMA_5 + """
        INSERT INTO audit(id, ts, action, task_id, prompt_id, detail, by)
            VALUES (1, 1.0, 'answer', 3, 4, 'approve', 'cli');
        INSERT INTO replies VALUES (1, 1, 'r1', x'01'), (2, 2, 'r2', x'02');
        PRAGMA user_version=5;
    """)
    db.close()
    with Journal.open(journal_path) as journal:
        assert journal.replies() == [("r1", b"\x01"), ("r2", b"\x02")]
        assert [(d.action, d.task_id) for d in journal.history()] == [("answer", 3)]
        journal.remember("r3", b"\x03")
        journal.commit()
    assert rows(journal_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    with Journal.open(journal_path) as journal:  # the seq goes on where version 5 stopped
        assert journal.replies() == [("r1", b"\x01"), ("r2", b"\x02"), ("r3", b"\x03")]
    assert rows(journal_path, "SELECT seq FROM replies ORDER BY seq") == [(1,), (2,), (3,)]
    assert rows(journal_path, "SELECT request_id, reply, reply_seq, records FROM audit") == [
        (None, None, None, None)]
    # Version 5 wrote every decision's rows to their tables: all are folded.
    assert rows(journal_path, "SELECT value FROM meta WHERE key='folded'") == [(1,)]


async def test_a_decisions_reply_is_kept_in_its_audit_row_and_outlives_a_restart(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    """Replies to decisions and to other state changes come back in the order given,
    from the audit rows and the ring alike, and the ring goes on where it stopped."""
    service, journal, path = journaled
    registry = service.registry
    prompts = asked(registry, 2)
    journal.write()
    with service.deferred_syncs():
        service.handle(request(p.Answer(prompt_id=prompts[0], text="approve"), "a1"))
        opened = service.handle(request(p.Open(description="lint"), "o1"))
        service.handle(request(p.Answer(prompt_id=prompts[1], text="deny"), "a2"))
        # Refused (answered already): no decision, its reply goes into the ring.
        refused = service.handle(request(p.Answer(prompt_id=prompts[1], text="deny"), "a3"))
        assert service.write() is None
    assert not p.REPLY_DECODER.decode(refused.reply).ok
    assert rows(path, "SELECT request_id, prompt_id FROM audit ORDER BY id") == [
        ("a1", prompts[0]), ("a2", prompts[1])]
    assert rows(path, "SELECT request_id FROM replies ORDER BY seq") == [("o1",), ("a3",)]
    remembered = journal.replies()
    assert [r for r, _ in remembered] == ["a1", "o1", "a2", "a3"]
    assert dict(remembered)["o1"] == opened.reply
    service.stop()
    journal.close()
    with Journal.open(path) as again:
        assert again.replies() == remembered
        again.remember("o2", b"\x02")
        again.commit()
        assert [r for r, _ in again.replies()] == ["a1", "o1", "a2", "a3", "o2"]


def test_the_remembered_replies_are_a_ring_of_the_last_ones(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.journal, "REPLIES_KEPT", 4)
    with Journal.open(journal_path) as journal:
        for batch in range(3):
            for i in range(3):
                journal.remember(f"r{batch * 3 + i}", bytes([batch * 3 + i]))
            journal.commit()
    assert rows(journal_path, "SELECT count(*) FROM replies") == [(4,)]
    with Journal.open(journal_path) as journal:  # the ring goes on where it stopped
        assert journal.replies() == [(f"r{i}", bytes([i])) for i in range(5, 9)]
        journal.remember("r9", b"\x09")
        journal.commit()
        assert journal.replies() == [(f"r{i}", bytes([i])) for i in range(6, 10)]


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_an_answer_commits_at_most_two_pages(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    """The audit row (holding the task and prompt rows and the remembered reply) and the
    audit index: each page is WAL bytes and CPU the answer's commit waits for (schema 4
    wrote eleven, schema 5 five). The tables get the rows later, a few answers a page."""
    service, journal, path = journaled
    prompts = asked(service.registry, 40)
    journal.write()
    grown = []
    for n, prompt in enumerate(prompts):
        before = wal_size(path)
        with service.deferred_syncs():
            service.handle(request(p.Answer(prompt_id=prompt, text="approve"), f"a{n}"))
            assert service.write() is None
        grown.append(wal_size(path) - before)
    pages = sorted(g / WAL_FRAME for g in grown if g > 0)  # a checkpoint may restart the WAL
    assert pages and pages[len(pages) // 2] <= 2, pages
    assert rows(path, "SELECT count(*) FROM audit_tasks") == [(0,)]
    assert rows(path, "SELECT count(*) FROM replies") == [(0,)]
    assert rows(path, "SELECT count(*) FROM audit WHERE reply IS NOT NULL") == [(40,)]
    assert rows(path, "SELECT count(*) FROM audit") == [(40,)]


async def test_rows_a_decision_wrote_are_written_again_when_they_change_in_its_batch(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    """The events of applying an answer repeat rows the decision wrote and are skipped;
    a later change in the same batch still reaches the file."""
    service, journal, path = journaled
    registry = service.registry
    (prompt,) = asked(registry, 1)
    [task_id] = [t.id for t in registry.snapshot().tasks]
    journal.write()
    with service.deferred_syncs():
        service.handle(request(p.Answer(prompt_id=prompt, text="approve"), "a1"))
        registry.add_tokens(task_id, 7, 3)
        assert service.write() is None
    recorded = journal.task(task_id)
    assert recorded is not None
    task, prompts = recorded
    assert (task.prompt_tokens, task.completion_tokens) == (7, 3)
    assert task == registry.snapshot().tasks[0]
    assert [q.state.value for q in prompts] == ["answered"]
