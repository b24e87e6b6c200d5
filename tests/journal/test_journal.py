"""The journal records a live registry in SQLite: batched events, durable decisions, audit trail."""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.journal import Journal, JournalError, default_journal_path
from core.model import PromptState, TaskStatus
from core.protocol import Decision
from core.registry import Registry
from tests.support import until


@dataclass
class Origin:
    """Where a request came from, shaped like the wire's Origin."""

    user: str = "ana"
    host: str = "box"
    pid: int = 4242
    client: str = "tui"


def rows(path: Path, sql: str) -> list[tuple]:
    """Read the journal through a separate connection, as another process would."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_creates_private_dir_and_file(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    try:
        assert mode(journal_path.parent) == 0o700
        assert mode(journal_path) == 0o600
        assert rows(journal_path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        journal.close()
    again = Journal.open(journal_path)  # reopening keeps the modes and the schema
    again.close()
    assert mode(journal_path) == 0o600


async def test_wal_and_shm_files_are_private_too(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry()
    journal.attach(registry)
    registry.open_external("x")
    journal.commit()
    try:
        for suffix in ("-wal", "-shm"):
            side = journal_path.with_name(journal_path.name + suffix)
            assert side.exists()
            assert mode(side) == 0o600
    finally:
        journal.close()
        await registry.close()


def test_not_a_journal_is_one_readable_error(tmp_path: Path) -> None:
    bogus = tmp_path / "journal.sqlite3"
    bogus.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal.open(bogus)


def test_newer_schema_is_refused(journal_path: Path) -> None:
    Journal.open(journal_path).close()
    db = sqlite3.connect(journal_path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(JournalError, match="newer taskdeck"):
        Journal.open(journal_path)


def test_default_path_follows_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKDECK_STATE_DIR", str(tmp_path / "st"))
    assert default_journal_path() == tmp_path / "st" / "journal.sqlite3"


async def test_events_are_batched_then_group_committed(journal_path: Path) -> None:
    journal = Journal.open(journal_path, group_delay=0.02)
    registry = Registry()
    journal.attach(registry)
    try:
        ext = registry.open_external("deploy", lease=60)
        for _ in range(50):
            registry.add_tokens(ext.id, 10, 5)
        # Nothing touched the disk inside the registry's step: the rows wait in the batch.
        assert journal.pending == 1
        assert rows(journal_path, "SELECT count(*) FROM tasks") == [(0,)]
        await until(
            lambda: rows(journal_path, "SELECT count(*) FROM tasks") == [(1,)],
            what="the group commit",
        )
        assert journal.pending == 0
        # 51 events for one task coalesced into one row carrying the last state.
        task, _ = journal.task(ext.id)
        assert task.prompt_tokens == 500 and task.completion_tokens == 250
    finally:
        journal.close()
        await registry.close()


async def test_commit_writes_at_once_and_another_process_sees_it(journal_path: Path) -> None:
    journal = Journal.open(journal_path, group_delay=60)  # no group commit in this test
    registry = Registry()
    journal.attach(registry)
    try:
        ext = registry.open_external("deploy", lease=60)
        prompt = registry.open_prompt(ext.id, "Deploy?")
        registry.answer(prompt.id, "approve", by="tui:ana@box")
        journal.audit(
            "answer", task_id=ext.id, prompt_id=prompt.id, detail="approve",
            by="tui:ana@box", origin=Origin(),
        )
        journal.commit()
        assert journal.pending == 0
        assert rows(journal_path, f"SELECT state FROM prompts WHERE id={prompt.id}") == [
            ("answered",)
        ]
        assert rows(journal_path, "SELECT action, detail, user, host, pid, client FROM audit") == [
            ("answer", "approve", "ana", "box", 4242, "tui")
        ]
        # A durable commit runs with synchronous=FULL; the next ordinary write goes back
        # to NORMAL (the pragma is set only when it changes, not twice per decision).
        assert journal._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        registry.add_tokens(ext.id, 10, 5)
        journal.write()
        assert journal._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    finally:
        journal.close()
        await registry.close()


async def test_audit_history_filters_and_limits(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry()
    journal.attach(registry)
    try:
        root = registry.open_external("root", lease=60)
        child = registry.open_external("child", parent_id=root.id, lease=60)
        other = registry.open_external("other", lease=60)
        p = registry.open_prompt(other.id, "Go?")
        registry.answer(p.id, "deny", reason="not today", by="cli:bo@srv")

        @dataclass
        class CurveOrigin(Origin):
            curve_key: bytes = b"\x01\x02"

        journal.audit(
            "answer", task_id=other.id, prompt_id=p.id, detail="deny: not today",
            by="cli:bo@srv", origin=CurveOrigin(user="bo", host="srv", client="cli"),
        )
        journal.commit()
        ended = registry.abort(root.id, by="tui:ana@box")
        journal.audit(
            "abort", task_id=root.id, prompt_id=None, detail=f"aborted {ended}",
            by="tui:ana@box", origin=Origin(), affected=ended,
        )
        journal.commit()

        everything = journal.history()
        assert [e.action for e in everything] == ["answer", "abort"]
        assert everything[0].curve_key == "0102"
        assert everything[0].epoch == registry.epoch
        assert all(isinstance(e, Decision) for e in everything)
        # The child was ended by its parent's abort: its history shows that decision.
        assert [e.action for e in journal.history(task_id=child.id)] == ["abort"]
        assert [e.action for e in journal.history(task_id=other.id)] == ["answer"]
        assert journal.history(task_id=9999) == []
        assert [e.action for e in journal.history(limit=1)] == ["abort"]  # the latest
    finally:
        journal.close()
        await registry.close()


async def test_origin_is_duck_typed_and_may_be_missing(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    try:
        journal.audit("abort", task_id=1, prompt_id=None, detail="x", by="cli", origin=None)

        class Odd:
            user = "u"
            pid = "not a number"

        journal.audit("abort", task_id=1, prompt_id=None, detail="y", by="cli", origin=Odd())
        journal.commit()
        first, second = journal.history()
        assert (first.user, first.host, first.pid) == (None, None, None)
        assert (second.user, second.pid) == ("u", None)
    finally:
        journal.close()


async def test_evicted_tasks_stay_in_the_journal(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry()
    journal.attach(registry)
    try:
        done = registry.open_external("old work", lease=60)
        registry.finish(done.id, "ok")
        kept = registry.open_external("still running", lease=60)
        assert registry.evict([done.id]) == [done.id]
        journal.commit()
        assert rows(journal_path, f"SELECT status FROM tasks WHERE id={done.id}") == [
            ("finished",)
        ]
        task, _ = journal.task(done.id)
        assert task.result == "ok"
        tasks, _ = journal.load()
        assert [t.id for t in tasks] == [kept.id]  # evicted rows do not come back to memory
        assert journal.next_id() > max(done.id, kept.id)
    finally:
        journal.close()
        await registry.close()


async def test_commit_after_close_is_an_error(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    journal.close()
    journal.close()  # idempotent
    journal.audit("abort", task_id=1, prompt_id=None, detail="x", by="cli", origin=None)
    with pytest.raises(JournalError, match="closed"):
        journal.commit()


async def test_prompt_states_round_trip(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry()
    journal.attach(registry)
    try:
        ext = registry.open_external("t", lease=60)
        first = registry.open_prompt(ext.id, "One?", timeout=0.01)
        await until(lambda: registry.get_prompt(first.id).state is PromptState.TIMED_OUT)
        second = registry.open_prompt(ext.id, "Two?", choices=["yes", "no"])
        registry.answer(second.id, "No", reason="nope", by="x")
        journal.commit()
        tasks, prompts = journal.load()
        assert [t.status for t in tasks] == [TaskStatus.IN_PROGRESS]
        assert [(p.id, p.state, p.answer, p.reason) for p in prompts] == [
            (first.id, PromptState.TIMED_OUT, None, None),
            (second.id, PromptState.ANSWERED, "no", "nope"),
        ]
        assert prompts[1].is_denial
    finally:
        journal.close()
        await registry.close()


async def test_group_commit_never_blocks_a_burst(journal_path: Path) -> None:
    """A burst of 5,000 events is recorded in a handful of transactions."""
    journal = Journal.open(journal_path, group_delay=0.05)
    registry = Registry()
    journal.attach(registry)
    try:
        ids = [registry.open_external(f"t{i}", lease=60).id for i in range(500)]
        for _ in range(9):
            for i in ids:
                registry.add_tokens(i, 1)
        await until(lambda: journal.pending == 0, what="the group commit")
        assert journal.commits <= 5
        assert rows(journal_path, "SELECT count(*) FROM tasks") == [(500,)]
    finally:
        journal.close()
        await registry.close()


async def test_durable_commit_cost(journal_path: Path, figures: dict) -> None:
    """What one person's decision costs the daemon: audit + fsynced commit, measured."""
    import time

    journal = Journal.open(journal_path, group_delay=60)
    registry = Registry()
    journal.attach(registry)
    try:
        ext = registry.open_external("t", lease=600)
        costs = []
        for i in range(200):
            prompt = registry.open_prompt(ext.id, f"q{i}?")
            registry.answer(prompt.id, "approve", by="x")
            started = time.perf_counter()
            journal.audit("answer", task_id=ext.id, prompt_id=prompt.id, detail="approve",
                          by="x", origin=Origin())
            journal.commit()
            costs.append(time.perf_counter() - started)
        assert len(journal.history(task_id=ext.id)) == 200
        costs.sort()
        figures["durable commit"] = {
            "decisions": len(costs),
            "median ms": round(costs[len(costs) // 2] * 1000, 2),
            "p99 ms": round(costs[int(len(costs) * 0.99)] * 1000, 2),
        }
        assert costs[len(costs) // 2] < 0.5  # generous: a broken fsync path would hang far longer
    finally:
        journal.close()
        await registry.close()
