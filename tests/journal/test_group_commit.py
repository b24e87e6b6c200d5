"""Group commit: the decisions of one batch of requests share one commit and one fsync.

Each decision is still written (into the batch's transaction) before it applies, and
its reply stands only once the batch's commit succeeds: concurrent answers cost one
sync, and none is acknowledged unless the file holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.client import Client
from core.context import AgentContext
from core.errors import TaskdeckError, Unrecorded
from core.journal import Journal
from core.model import PromptState, TaskStatus
from core.registry import Registry
from core.runtime import read_connection
from core.service import CommandService
from tests.support import until
from tests.wire.conftest import make_registry
from tests.wire.test_service import journaled  # noqa: F401  (the fixture)

ANSWERS = 20


def request(body: p.Command, request_id: str) -> list[bytes]:
    return [p.encode(p.Request(id=request_id, version=p.PROTOCOL_VERSION, body=body))]


def audited(path: Path) -> list[tuple[str, int]]:
    """(action, prompt id) of every decision in the file, read with a fresh connection."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT action, prompt_id FROM audit ORDER BY id").fetchall()
    finally:
        db.close()


def asked(registry: Registry, count: int) -> list[int]:
    """`count` external tasks, each waiting on a question; their prompt ids."""
    ids = []
    for i in range(count):
        task = registry.open_external(f"deploy {i}", lease=600)
        ids.append(registry.open_prompt(task.id, f"Run deploy {i}?").id)
    return ids


async def test_the_answers_of_one_batch_share_one_commit(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, path = journaled
    registry = service.registry
    prompts = asked(registry, ANSWERS)
    journal.write()
    before = journal.commits
    with service.deferred_syncs():
        handled = [service.handle(request(p.Answer(prompt_id=i, text="approve"), f"a{i}"))
                   for i in prompts]
        # Written into the batch's transaction and applied, but not yet committed:
        # another connection does not see them, and each reply waits for the commit.
        assert audited(path) == []
        assert [h.recorded for h in handled] == [f"a{i}" for i in prompts]
        assert all(p.REPLY_DECODER.decode(h.reply).result.prompt.state  # type: ignore[union-attr]
                   is PromptState.ANSWERED for h in handled)
        assert service.write() is None
    assert journal.commits == before + 1
    assert audited(path) == [("answer", i) for i in prompts]


async def test_outside_a_batch_each_decision_is_committed_before_it_applies(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, path = journaled
    registry = service.registry
    (prompt,) = asked(registry, 1)
    handled = service.handle(request(p.Answer(prompt_id=prompt, text="deny"), "alone"))
    assert handled.recorded is None  # its ok stands whatever the next write does
    assert audited(path) == [("answer", prompt)]


async def test_a_batch_whose_commit_fails_acknowledges_none_of_its_answers(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, path = journaled
    registry = service.registry
    prompts = asked(registry, 3)
    journal.write()
    with service.deferred_syncs():
        handled = [service.handle(request(p.Answer(prompt_id=i, text="approve"), f"b{i}"))
                   for i in prompts]
        for suffix in ("", "-wal", "-shm"):  # moved away under the daemon
            os.rename(f"{path}{suffix}", f"{path.with_name('moved.sqlite3')}{suffix}")
        error = service.write()
    assert error is not None and "deleted or replaced" in error
    for h in handled:
        assert h.recorded is not None
        reply = p.REPLY_DECODER.decode(service.unrecorded(h.recorded, error))
        assert not reply.ok and reply.error is not None
        assert reply.error.code == "JOURNAL_FAILED"
    # The transaction was rolled back: the moved file holds none of the batch's decisions.
    assert audited(path.with_name("moved.sqlite3")) == []
    assert journal.failed is not None


async def test_a_daemon_groups_concurrent_answers_and_every_ok_is_in_the_file(
    tmp_path: Path,
) -> None:
    """Twenty REQ sockets send their answers at once: the daemon drains them as one batch
    (or a few) and every acknowledged answer is in the file when its ok arrives."""
    from core.assembly import Assembly
    from tests.wire.conftest import HEARTBEAT

    path = tmp_path / "state" / "journal.sqlite3"
    async with Assembly(lambda first_id: make_registry(first_id=first_id),
                        runtime_dir=tmp_path / "run", journal=path, heartbeat=HEARTBEAT) as deck:
        assert deck.journal is not None
        prompts = asked(deck.registry, ANSWERS)
        deck.journal.write()
        before = deck.journal.commits
        endpoint = read_connection(tmp_path / "run").commands
        ctx = zmq.asyncio.Context()
        socks = [ctx.socket(zmq.REQ) for _ in prompts]
        try:
            for sock in socks:
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(endpoint)
            # Queued without yielding to the loop: the daemon sees them together.
            for sock, prompt in zip(socks, prompts, strict=True):
                sock.send(request(p.Answer(prompt_id=prompt, text="approve"), f"c{prompt}")[0],
                          zmq.NOBLOCK)
            replies = await asyncio.wait_for(
                asyncio.gather(*(sock.recv() for sock in socks)), timeout=20)
        finally:
            for sock in socks:
                sock.close(linger=0)
            ctx.term()
        assert all(p.REPLY_DECODER.decode(r).ok for r in replies)
        assert sorted(prompt for _, prompt in audited(path)) == prompts
        commits = deck.journal.commits - before
        assert 1 <= commits < ANSWERS, f"{commits} commits for {ANSWERS} concurrent answers"


# ------------------------------------------------ wake-ups wait for the commit


@contextlib.contextmanager
def wal_cannot_grow(path: Path) -> Iterator[None]:
    """A real disk fault for the next commit: the process may not write past the WAL's
    current size (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails with EFBIG).

    The rows of a transaction wait in SQLite's page cache until COMMIT appends them to
    the WAL, so it is the commit that fails, not the rows written before it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(f"{path}-wal"), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def asking_registry(heard: list[object], first_id: int) -> Registry:
    """A registry whose "asker" agent asks one question and notes what its ask returned."""

    async def asker(ctx: AgentContext) -> str:
        try:
            answer = await ctx.ask("Drop the staging database?")
        except TaskdeckError as exc:
            heard.append(exc)
            raise
        heard.append(answer)
        return answer

    return Registry(agents={"asker": asker}, first_id=first_id)


async def loop_turns(count: int = 20) -> None:
    """Give the loop `count` turns: what was made ready runs (an agent woken resumes)."""
    for _ in range(count):
        await asyncio.sleep(0)


@contextlib.contextmanager
def writes_break(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fault that is no disk's: the batch's write raises what a bug would (an int SQLite
    cannot hold), so the transaction holding its decisions is rolled back all the same."""
    with monkeypatch.context() as patch:
        def broken(*args: object) -> None:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")

        patch.setattr(Journal, "_insert", broken)
        yield


@pytest.mark.parametrize("commit", ["succeeds", "fails", "breaks"])
async def test_an_in_process_asker_hears_a_grouped_answer_only_once_it_is_committed(
    tmp_path: Path, commit: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard: list[object] = []
    path = tmp_path / "state" / "journal.sqlite3"
    journal = Journal.open(path)
    registry = asking_registry(heard, journal.next_id())
    journal.attach(registry)
    service = CommandService(registry, journal=journal)
    service.start()
    try:
        task = registry.submit("asker", "clean up staging")
        await until(lambda: registry.get(task.id).blocked_on is not None)
        prompt_id = registry.get(task.id).blocked_on.prompt_id  # type: ignore[union-attr]
        journal.write()
        with service.deferred_syncs():
            handled = service.handle(request(p.Answer(prompt_id=prompt_id, text="approve"), "a"))
            assert p.REPLY_DECODER.decode(handled.reply).ok  # applied, not yet committed
            await loop_turns()
            assert heard == []  # the agent is not resumed before the commit
            faults = {"fails": lambda: wal_cannot_grow(path),
                      "breaks": lambda: writes_break(monkeypatch)}
            with faults.get(commit, contextlib.nullcontext)():
                error = service.write()
        await until(lambda: heard, what="the asker's ask to return")
        if commit == "succeeds":
            assert error is None and heard == ["approve"]
            assert audited(path) == [("answer", prompt_id)]
            return
        assert error is not None and "cannot write journal" in error
        assert handled.recorded is not None
        assert p.REPLY_DECODER.decode(service.unrecorded(handled.recorded, error)).error.code \
            == "JOURNAL_FAILED"  # type: ignore[union-attr]
        [refusal] = heard
        assert isinstance(refusal, Unrecorded), refusal
        assert "nothing was approved" in str(refusal)
        # The asker's task ends failed on the refusal, and the file holds no answer.
        await until(lambda: registry.get(task.id).status is TaskStatus.FAILED)
        assert audited(path) == []
    finally:
        service.stop()
        await registry.close()
        journal.close()


async def test_a_daemon_whose_commit_fails_does_not_resume_the_asker(tmp_path: Path) -> None:
    """Over the wire: the answer's reply says it was not recorded, and the agent that
    asked raises `Unrecorded` instead of going on with "approve"."""
    from core.assembly import Assembly
    from tests.wire.conftest import HEARTBEAT

    heard: list[object] = []
    path = tmp_path / "state" / "journal.sqlite3"
    async with Assembly(lambda first_id: asking_registry(heard, first_id),
                        runtime_dir=tmp_path / "run", journal=path, heartbeat=HEARTBEAT) as deck:
        async with Client(tmp_path / "run") as client:
            task = await client.submit("asker", "clean up staging")
            await until(lambda: deck.registry.get(task.id).blocked_on is not None)
            prompt_id = deck.registry.get(task.id).blocked_on.prompt_id  # type: ignore[union-attr]
            assert deck.journal is not None
            deck.journal.write()
            with wal_cannot_grow(path), pytest.raises(TaskdeckError, match="not recorded"):
                await client.answer(prompt_id, "approve")
            await until(lambda: heard, what="the asker's ask to return")
            assert isinstance(heard[0], Unrecorded), heard
            assert "cannot write journal" in (await client.hello())["journal_error"]
    assert audited(path) == []



@pytest.mark.parametrize("asker", ["script", "hook"])
async def test_an_external_asker_does_not_act_on_an_answer_its_daemon_failed_to_record(
    tmp_path: Path, asker: str,
) -> None:
    """The batch's events still go out after its commit failed, so the asker sees the
    answer: a script's `ask` (the async client) and a hook's blocking wait must both
    raise `Unrecorded` rather than go on with "approve"."""
    from core.assembly import Assembly
    from core.client import SyncClient
    from core.client.waiting import ask_and_wait
    from core.model import Question
    from tests.wire.conftest import HEARTBEAT

    path = tmp_path / "state" / "journal.sqlite3"
    run = tmp_path / "run"
    loop = asyncio.get_running_loop()
    asked: asyncio.Future[int] = loop.create_future()

    def on_asked(prompt: object) -> None:
        loop.call_soon_threadsafe(asked.set_result, prompt.id)  # type: ignore[attr-defined]

    def hook() -> object:
        with SyncClient(run) as sync:
            task = sync.request(p.Open(description="deploy", lease=600)).task
            return ask_and_wait(sync, task.id, Question(text="Deploy?"), on_asked=on_asked)

    async with Assembly(lambda first_id: Registry(first_id=first_id),
                        runtime_dir=run, journal=path, heartbeat=HEARTBEAT) as deck:
        async with Client(run) as client:
            if asker == "script":
                task = await client.open_task("deploy", lease=600)
                waiting = asyncio.ensure_future(task.ask("Deploy?", on_asked=on_asked))
            else:
                waiting = asyncio.ensure_future(asyncio.to_thread(hook))
            prompt_id = await asyncio.wait_for(asked, 10)
            assert deck.journal is not None
            deck.journal.write()
            with wal_cannot_grow(path), pytest.raises(TaskdeckError, match="not recorded"):
                await client.answer(prompt_id, "approve")
            with pytest.raises(Unrecorded, match="nothing was approved"):
                await asyncio.wait_for(waiting, 10)
    assert audited(path) == []