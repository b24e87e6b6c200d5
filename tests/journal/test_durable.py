"""Durable acknowledgements and decisions, against a real `taskdeck serve` and real faults.

Each test is a fault found on an earlier design: an acknowledged question lost in a
`kill -9` and its id given again (the old asker took the new question's approval),
an answer delivered although the journal could not record it, a journal deleted under
the daemon, and smaller gaps in what the journal says and how it says it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core import protocol as p
from core.client import Client, SyncClient
from core.errors import TaskdeckError
from core.journal import Journal
from core.model import EndReason, Prompt, PromptState, TaskStatus
from core.registry import Registry
from core.runtime import read_connection
from tests.journal.test_faults import ROOT, Deck
from tests.support import until


async def pending_prompt(client: Client, task_id: int) -> Prompt:
    """Wait until the task blocks on a question; returns that prompt."""
    async def blocked() -> Prompt | None:
        task, asked = await client.get(task_id)
        return asked[-1] if task.status is TaskStatus.BLOCKED and asked else None

    for _ in range(1500):
        prompt = await blocked()
        if prompt is not None:
            return prompt
        await asyncio.sleep(0.01)  # polling a condition, with a bound
    raise AssertionError(f"task {task_id} never asked")


async def opened_question(queue: asyncio.Queue[Prompt], question: str) -> Prompt:
    """The next prompt the watching mirror saw open with that question."""
    while True:
        prompt = await asyncio.wait_for(queue.get(), timeout=15)
        if prompt.question == question:
            return prompt


async def watcher(deck: Deck) -> tuple[Client, asyncio.Queue[Prompt]]:
    """A client mirroring the daemon, with every prompt it sees open put in a queue."""
    client = Client(deck.runtime_dir, client_name="watch")
    await client.connect()
    queue: asyncio.Queue[Prompt] = asyncio.Queue()
    await client.start_mirror(lambda changes: [queue.put_nowait(q) for q in changes.opened])
    await client.wait_synced(timeout=10)
    return client, queue


@contextlib.asynccontextmanager
async def journaled(tmp_path: Path) -> AsyncIterator[tuple[Registry, Journal, Path]]:
    """An in-process daemon with a real journal (its recorder installed by the daemon)."""
    from core.assembly import Assembly
    from tests.wire.conftest import HEARTBEAT, make_registry

    path = tmp_path / "state" / "journal.sqlite3"
    async with Assembly(lambda first_id: make_registry(first_id=first_id),
                        runtime_dir=tmp_path / "run", journal=path, heartbeat=HEARTBEAT) as deck:
        assert deck.journal is not None
        yield deck.registry, deck.journal, path


async def asked(deck: Deck, description: str, question: str) -> int:
    """Open an external task that asks `question` and is left waiting; returns its id."""
    async with Client(deck.runtime_dir) as client:
        task = await client.open_task(description, lease=600)
        await client.request(p.Ask(task_id=task.id, question=question))
        await task.close()
    return task.id


def finish(process: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"{process.args} did not exit: {out!r} {err!r}") from None
    return process.returncode, out, err


# ------------------------------------------------------- acknowledged, then kill -9


@pytest.mark.timeout(90)
async def test_kill_9_right_after_a_question_never_hands_its_asker_another_answer(
    tmp_path: Path,
) -> None:
    """The exact fault: "Deploy A to prod?" asked, `kill -9` at once, restart, "Wipe the
    staging db?" asked and approved: the first asker must not take that approval."""
    deck = Deck(tmp_path)
    old = new = None
    try:
        await deck.start()
        client, opened = await watcher(deck)
        old = deck.popen("ask", "Deploy A to prod?")
        first = await opened_question(opened, "Deploy A to prod?")
        deck.kill()  # milliseconds after the question was published
        await client.close()

        await deck.start()
        client, opened = await watcher(deck)
        new = deck.popen("ask", "Wipe the staging db?")
        second = await opened_question(opened, "Wipe the staging db?")
        approved = deck.cli("answer", str(second.task_id), "approve")
        assert approved.returncode == 0, approved.stderr
        code, out, err = finish(new)
        assert (code, out.strip()) == (0, "approve"), err

        # The old asker took nothing: its question survived under its own ids, and waits.
        if old.poll() is not None:
            raise AssertionError(f"the old asker exited: {old.returncode} {old.communicate()}")
        assert second.id != first.id and second.task_id != first.task_id  # never given twice
        _, asked = await client.get(first.task_id)
        assert [(q.id, q.question, q.state) for q in asked] == [
            (first.id, "Deploy A to prod?", PromptState.PENDING)
        ]
        denied = deck.cli("answer", str(first.task_id), "deny")
        assert denied.returncode == 0, denied.stderr
        code, out, err = finish(old)
        assert (code, out.strip()) == (1, "deny"), err  # its own answer, and only that
        await client.close()
    finally:
        for asker in (old, new):
            if asker is not None and asker.poll() is None:
                asker.kill()
                asker.wait()
        deck.stop()


@pytest.mark.timeout(90)
async def test_acknowledged_opens_asks_and_finishes_survive_kill_9(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    try:
        await deck.start()
        acks: dict[int, tuple[str, int | None]] = {}
        with SyncClient(deck.runtime_dir, client_name="script") as client:
            for i in range(30):
                task = client.request(p.Open(description=f"job {i}", lease=600)).task
                if i % 3 == 0:
                    client.request(p.Finish(task_id=task.id, result=f"done {i}"))
                    acks[task.id] = ("finished", None)
                else:
                    prompt = client.request(p.Ask(task_id=task.id, question=f"go {i}?")).prompt
                    acks[task.id] = ("asked", prompt.id)
        deck.kill()  # right after the last "ok"
        await deck.start()
        async with Client(deck.runtime_dir) as client:
            for task_id, (what, prompt_id) in acks.items():
                task, asked = await client.get(task_id)
                if what == "finished":
                    assert task.status is TaskStatus.FINISHED and task.result
                else:
                    assert task.status is TaskStatus.BLOCKED
                    assert [q.id for q in asked] == [prompt_id]
    finally:
        deck.stop()


@pytest.mark.timeout(60)
async def test_a_retry_whose_reply_was_lost_in_kill_9_is_not_applied_again(
    tmp_path: Path,
) -> None:
    from tests.wire.test_commands import raw_request

    deck = Deck(tmp_path)
    try:
        await deck.start()
        async with Client(deck.runtime_dir) as client:
            task = await client.open_task("deploy", lease=600)
            await task.close()
        ask = p.encode(p.Request(id="ask-once", version=p.PROTOCOL_VERSION,
                                 body=p.Ask(task_id=task.id, question="Deploy?")))
        first = await raw_request(read_connection(deck.runtime_dir).commands, ask)
        assert first.ok
        deck.kill()  # as if its reply had been lost: the client sends it again
        await deck.start()
        again = await raw_request(read_connection(deck.runtime_dir).commands, ask)
        assert again == first  # the reply it was given, not a second question
        async with Client(deck.runtime_dir) as client:
            _, asked = await client.get(task.id)
        assert [q.question for q in asked] == ["Deploy?"]
    finally:
        deck.stop()


async def test_ids_are_reserved_durably_before_they_are_given(journal_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry(first_id=journal.next_id())
    journal.attach(registry)
    given = [registry.open_external(f"t{i}").id for i in range(3)]
    # Nothing of these tasks is written yet; a crash now would lose their rows, but
    # the reservation is already on disk, so a restart gives none of their ids again.
    other = Journal.open(journal_path)
    assert other.next_id() > max(given)
    other.close()
    await registry.close()
    journal.close()


# ----------------------------------------------------------- the journal fails


@pytest.mark.timeout(90)
async def test_unwritable_journal_refuses_the_answer_and_the_asker_gets_nothing(
    tmp_path: Path,
) -> None:
    """EFBIG from RLIMIT_FSIZE in the daemon: `answer` fails, and `ask` must not approve."""
    deck = Deck(tmp_path, fsize=256 * 1024)
    asker = None
    try:
        await deck.start()
        client, opened = await watcher(deck)
        asker = deck.popen("ask", "Deploy A to prod?")
        asked = await opened_question(opened, "Deploy A to prod?")
        # Ordinary writes grow the WAL until the cap makes them fail.
        with SyncClient(deck.runtime_dir) as sync:
            busy = sync.request(p.Open(description="busy", lease=600)).task
            for i in range(20000):
                sync.request(p.Progress(task_id=busy.id, text=f"step {i} " + "x" * 400))
                if i % 50 == 0 and sync.hello().get("journal_error"):
                    break
            hello = sync.hello()
        assert "cannot write journal" in hello["journal_error"]

        refused = deck.cli("answer", str(asked.task_id), "approve")
        assert refused.returncode == 2
        assert "cannot record" in refused.stderr and "Traceback" not in refused.stderr
        _, prompts = await client.get(asked.task_id)
        assert prompts[-1].state is PromptState.PENDING  # nothing was applied
        assert asker.poll() is None  # still waiting: it was told nothing
        await client.close()
    finally:
        if asker is not None and asker.poll() is None:
            asker.kill()
        if asker is not None:
            out, _ = asker.communicate(timeout=10)
            assert "approve" not in out
        deck.stop()
    assert "cannot write journal" in deck.log.read_text()  # said loudly, in the log
    # A restart on the (now writable) journal has no record of a decision nobody made.
    shown = deck.cli("history", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [e for e in json.loads(shown.stdout) if e["action"] == "answer"] == []


@pytest.mark.timeout(60)
async def test_deleted_journal_stops_decisions_loudly(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    try:
        await deck.start()
        async with Client(deck.runtime_dir) as client:
            task = await client.open_task("deploy", lease=600)
            prompt = (await client.request(p.Ask(task_id=task.id, question="Deploy?"))).prompt
            deck.journal.unlink()
            refused = deck.cli("answer", str(task.id), "approve")
            assert refused.returncode == 2
            assert "deleted or replaced" in refused.stderr
            hello = await client.hello()
            assert "deleted or replaced" in hello["journal_error"]
            _, asked = await client.get(task.id)
            assert asked[-1].id == prompt.id and asked[-1].state is PromptState.PENDING
            with pytest.raises(TaskdeckError, match="cannot record"):
                await client.open_task("more work")
            await task.close()
    finally:
        deck.stop()
    assert "deleted or replaced" in deck.log.read_text()


async def test_an_in_process_agent_does_not_resume_on_an_unrecorded_answer(
    tmp_path: Path,
) -> None:
    async with journaled(tmp_path) as (registry, journal, path):
        async with Client(tmp_path / "run") as client:
            task = await client.submit("echo", "rm -rf build")
            await until(lambda: registry.get(task.id).blocked_on is not None)
            prompt_id = registry.get(task.id).blocked_on.prompt_id
            path.unlink()
            with pytest.raises(TaskdeckError, match="deleted or replaced"):
                await client.answer(prompt_id, "approve")
            assert registry.get(task.id).status is TaskStatus.BLOCKED
            assert registry.get_prompt(prompt_id).state is PromptState.PENDING


async def test_events_are_published_only_after_their_rows_are_written(tmp_path: Path) -> None:
    unwritten: list[int] = []
    seen: set[int] = set()

    def check(changes: object) -> None:
        written = {row[0] for row in reader.execute("SELECT id FROM tasks")}
        for task_id in changes.task_ids:  # type: ignore[attr-defined]
            seen.add(task_id)
            if task_id not in written:
                unwritten.append(task_id)

    async with journaled(tmp_path) as (registry, journal, path):
        reader = sqlite3.connect(path)
        async with Client(tmp_path / "run") as watching, Client(tmp_path / "run") as acting:
            await watching.start_mirror(check)
            await watching.wait_synced(timeout=5)
            created = [(await acting.submit("echo", f"job {i}")).id for i in range(10)]
            created += [(await acting.open_task(f"ext {i}", lease=60)).id for i in range(10)]
            await until(lambda: seen >= set(created), what="every task's event")
        reader.close()
    assert unwritten == []


# ------------------------------------------------------------- smaller gaps


async def test_a_timeout_default_is_in_history(tmp_path: Path) -> None:
    async with journaled(tmp_path) as (registry, journal, path):
        task = registry.open_external("nightly", lease=60)
        prompt = registry.open_prompt(task.id, "Skip the slow tests?", choices=["yes", "no"],
                                      timeout=0.05, default="no")
        await until(lambda: registry.get_prompt(prompt.id).state is PromptState.ANSWERED)
        [entry] = journal.history(task_id=task.id)
    assert (entry.action, entry.prompt_id, entry.by) == ("answer", prompt.id, "timeout")
    assert entry.detail == "no: no answer in time"
    assert entry.question == "Skip the slow tests?"


@pytest.mark.timeout(60)
async def test_clean_stop_records_running_tasks_as_restarted(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    await deck.start()
    async with Client(deck.runtime_dir) as client:
        task = await client.submit("forever", "index the repo")
        assert task.status is TaskStatus.IN_PROGRESS
    assert deck.stop() == 0
    with Journal.open(deck.journal) as journal:
        recorded = journal.task(task.id)
    assert recorded is not None
    assert recorded[0].status is TaskStatus.FAILED
    assert recorded[0].end_reason is EndReason.RESTARTED
    assert recorded[0].error == "daemon stopped while the task ran"


@pytest.mark.timeout(60)
async def test_a_retried_answer_after_a_restart_says_who_answered(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    try:
        await deck.start()
        task_id = await asked(deck, "migrate", "Migrate the db?")
        answered = deck.cli("answer", str(task_id), "approve")
        assert answered.returncode == 0, answered.stderr
        deck.kill()
        await deck.start()
        again = deck.cli("answer", str(task_id), "approve")
        assert again.returncode == 2
        line = again.stderr.strip()
        assert "already answered 'approve' by cli" in line and "Migrate the db?" in line
        assert "waits on no question" not in line
    finally:
        deck.stop()


@pytest.mark.timeout(60)
async def test_history_prints_the_question_with_each_answer(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    try:
        await deck.start()
        task_id = await asked(deck, "deploy", "Deploy A to prod?")
        assert deck.cli("answer", str(task_id), "deny", "--reason", "freeze").returncode == 0
        shown = deck.cli("history")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        [at] = [i for i, line in enumerate(lines) if "deny: freeze" in line]
        assert lines[at + 1].strip() == "? Deploy A to prod?"
    finally:
        deck.stop()


@pytest.mark.parametrize("version", [1, 2])
def test_a_journal_without_the_newer_audit_columns_still_loads(
    journal_path: Path, version: int
) -> None:
    """A file written before decisions kept their question (schema 1) or the action's
    summary (schema 2): opened, upgraded, read."""
    journal_path.parent.mkdir(mode=0o700)
    question = ", question TEXT" if version >= 2 else ""
    old = sqlite3.connect(journal_path)
    old.executescript(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
        " epoch INTEGER, action TEXT NOT NULL, task_id INTEGER, prompt_id INTEGER,"
        " detail TEXT NOT NULL, by TEXT NOT NULL, user TEXT, host TEXT, pid INTEGER,"
        f" client TEXT, curve_key TEXT{question});"
        "INSERT INTO audit(ts, action, task_id, prompt_id, detail, by)"
        " VALUES (1.0, 'answer', 3, 4, 'approve', 'cli');"
        f"PRAGMA user_version={version};"
    )
    old.close()
    with Journal.open(journal_path) as journal:
        [entry] = journal.history()
    assert (entry.prompt_id, entry.detail, entry.question, entry.summary) == (
        4, "approve", None, None)


def serve(tmp_path: Path, journal: Path) -> subprocess.CompletedProcess[str]:
    """`taskdeck serve` expected to refuse to start (bounded by a timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", "--journal", str(journal),
         "--runtime-dir", str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )


@pytest.mark.timeout(60)
async def test_a_damaged_journal_is_one_line_and_a_refusal(journal_path: Path,
                                                           tmp_path: Path) -> None:
    journal = Journal.open(journal_path)
    registry = Registry(first_id=journal.next_id())
    journal.attach(registry)
    for i in range(400):
        registry.finish(registry.open_external(f"task {i} " + "x" * 200).id, "ok")
    await registry.close()
    journal.close()
    data = bytearray(journal_path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 3 * 4096] = b"\xa5" * (3 * 4096)
    journal_path.write_bytes(bytes(data))

    refused = serve(tmp_path, journal_path)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert str(journal_path) in line and "move it aside" in line


@pytest.mark.timeout(60)
async def test_a_new_or_empty_journal_says_history_starts_fresh(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    await deck.start()
    assert deck.stop() == 0
    assert "history starts fresh" in deck.log.read_text()
    deck.journal.write_bytes(b"")  # emptied (or deleted) while the daemon was down
    deck.log.write_text("")
    await deck.start()
    assert deck.stop() == 0
    assert "history starts fresh" in deck.log.read_text()
    await deck.start()  # a journal with history in it says nothing of the kind
    assert deck.stop() == 0
    assert deck.log.read_text().count("history starts fresh") == 1
