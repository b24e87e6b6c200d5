"""Schema 6: a decision in a batch writes its task and prompt rows into its audit row; the
tables get them later (a fold), and a journal opened after a crash folds what was left."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import core.journal
from core import protocol as p
from core.journal import Journal
from core.service import CommandService
from tests.journal.test_group_commit import asked, request
from tests.journal.test_journal import rows
from tests.wire.test_service import journaled  # noqa: F401  (the fixture)


def answer(service: CommandService, prompt: int, request_id: str) -> None:
    """One answer in a batch of its own, as the daemon handles it."""
    with service.deferred_syncs():
        reply = service.handle(request(p.Answer(prompt_id=prompt, text="approve"), request_id))
        assert p.REPLY_DECODER.decode(reply.reply).ok
        assert service.write() is None


def written_prompts(journal: Journal, service: CommandService, count: int) -> list[int]:
    """`count` tasks waiting on a question, their rows written: their prompt ids."""
    prompts = asked(service.registry, count)
    journal.write()
    return prompts


def crashed_copy(path: Path) -> Path:
    """The file as a `kill -9` would leave it now: the database and its WAL, never closed."""
    copy = path.with_name("crashed.sqlite3")
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
    return copy


async def test_a_crash_before_the_fold_loses_no_decision(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, path = journaled
    registry = service.registry
    prompts = written_prompts(journal, service, 3)
    for n, prompt in enumerate(prompts):
        answer(service, prompt, f"a{n}")
    # Committed in the audit rows only: the prompts' own rows still say pending.
    assert rows(path, "SELECT state FROM prompts ORDER BY id") == [("pending",)] * 3
    assert rows(path, "SELECT count(*) FROM audit WHERE records IS NOT NULL") == [(3,)]
    copy = crashed_copy(path)
    with Journal.open(copy) as again:
        tasks, restored = again.load()
        assert tasks == registry.snapshot().tasks
        assert [q.state.value for q in restored] == ["answered"] * 3
    assert journal.load() == (tasks, restored)  # the live journal folds before it reads
    # Opening folded them: the tables are current, and 'folded' names the last decision.
    assert rows(copy, "SELECT state FROM prompts ORDER BY id") == [("answered",)] * 3
    assert rows(copy, "SELECT value FROM meta WHERE key='folded'") == rows(
        copy, "SELECT max(id) FROM audit")


async def test_a_later_change_of_a_decided_task_is_not_undone_by_its_audit_row(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    """Writing any task row folds the decisions first: no table row is ever newer than
    the records of an audit row that a restart would lay over it."""
    service, journal, path = journaled
    registry = service.registry
    (prompt,) = written_prompts(journal, service, 1)
    answer(service, prompt, "a1")
    [task] = registry.snapshot().tasks
    with service.deferred_syncs():
        service.handle(request(p.Progress(task_id=task.id, text="deploying"), "g1"))
        assert service.write() is None
    assert rows(path, "SELECT state FROM prompts") == [("answered",)]
    with Journal.open(crashed_copy(path)) as again:
        [restored], _ = again.load()
    assert restored.progress == "deploying"
    assert restored == registry.snapshot().tasks[0]


async def test_decisions_are_folded_every_few_and_before_a_read(
    journaled: tuple[CommandService, Journal, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.journal, "FOLD_AFTER", 4)
    service, journal, path = journaled
    prompts = written_prompts(journal, service, 6)
    for n, prompt in enumerate(prompts[:5]):
        answer(service, prompt, f"a{n}")
    # Four rows wait after every second answer (a task and a prompt each): its batch
    # folds them. The fifth answer's rows wait.
    states = [s for (s,) in rows(path, "SELECT state FROM prompts ORDER BY id")]
    assert states == ["answered"] * 4 + ["pending"] * 2
    [(task_id,)] = rows(path, f"SELECT task_id FROM prompts WHERE id={prompts[4]}")
    recorded = journal.task(task_id)  # a read folds first
    assert recorded is not None and recorded[1][0].state.value == "answered"
    assert rows(path, "SELECT count(*) FROM prompts WHERE state='answered'") == [(5,)]
