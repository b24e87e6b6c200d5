"""Group commit: the decisions of one batch of requests share one commit and one fsync.

Each decision is still written (into the batch's transaction) before it applies, and
its reply stands only once the batch's commit succeeds: concurrent answers cost one
sync, and none is acknowledged unless the file holds it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.journal import Journal
from core.model import PromptState
from core.registry import Registry
from core.runtime import read_connection
from core.service import CommandService
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
