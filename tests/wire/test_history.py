"""The audit trail on the wire: `history`, decisions found from every task they touched,
and the CURVE key the daemon (never the client) records for each decision."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import zmq

from core import protocol as p
from core.assembly import Assembly
from core.client import Client, SyncClient
from core.errors import BadRequest, InvalidState
from core.journal import Journal
from core.model import TaskStatus
from core.registry import Registry
from core.runtime import ALLOWED_CLIENTS_FILE, KeyPair, load_or_create_client_keys
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, ThreadedDaemon, make_registry

Connect = Callable[..., Awaitable[Client]]


def fresh_keys() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public=public.decode(), secret=secret.decode())


class JournaledDaemon:
    """A registry with a real SQLite journal, served by a daemon with that journal."""

    def __init__(self, runtime_dir: Path, journal_path: Path, **options: object) -> None:
        self.deck = Assembly(lambda first_id: make_registry(first_id=first_id),
                             runtime_dir=runtime_dir, journal=journal_path, heartbeat=HEARTBEAT,
                             **options)

    @property
    def registry(self) -> Registry:
        return self.deck.registry

    @property
    def journal(self) -> Journal:
        assert self.deck.journal is not None
        return self.deck.journal

    @property
    def daemon(self) -> Daemon:
        assert self.deck.daemon is not None
        return self.deck.daemon

    async def __aenter__(self) -> JournaledDaemon:
        await self.deck.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deck.close()


@pytest.fixture
async def journaled(runtime_dir: Path, tmp_path: Path) -> AsyncIterator[JournaledDaemon]:
    """A daemon on ipc sockets that keeps a journal in the test's tmp dir."""
    async with JournaledDaemon(runtime_dir, tmp_path / "state" / "journal.sqlite3") as served:
        yield served


async def asking(client: Client, registry: Registry, description: str) -> tuple[int, int]:
    """Submit an `echo` task and wait until it asks; returns (task id, prompt id)."""
    task = await client.submit("echo", description)
    await until(lambda: registry.get(task.id).blocked_on is not None, what="the question")
    blocked_on = registry.get(task.id).blocked_on
    assert blocked_on is not None
    return task.id, blocked_on.prompt_id


async def test_history_lists_answers_and_aborts_with_their_origin(
    journaled: JournaledDaemon, connect: Connect
) -> None:
    client = await connect(client_name="deck")
    task_id, prompt_id = await asking(client, journaled.registry, "pytest -q")
    await client.answer(prompt_id, "deny", reason="flaky today")
    root = await client.submit("tree", "root")
    await until(lambda: len(journaled.registry.children(root.id)) == 2, what="the children")
    ended = await client.abort(root.id)
    assert len(ended) == 3

    history = await client.history()
    assert [(e.action, e.task_id) for e in history] == [("answer", task_id), ("abort", root.id)]
    answer, abort = history
    assert answer.prompt_id == prompt_id
    assert answer.detail == "deny: flaky today"
    assert answer.by == client.origin.by and answer.by.startswith("deck:")
    assert (answer.user, answer.host, answer.pid, answer.client) == (
        client.origin.user, client.origin.host, os.getpid(), "deck")
    assert answer.curve_key is None  # ipc: no CURVE
    assert answer.epoch == journaled.registry.epoch
    assert answer.ts <= abort.ts and answer.id < abort.id
    assert abort.detail == f"subtree: ended {', '.join(map(str, ended))}"


async def test_a_task_shows_the_ancestor_abort_that_ended_it(
    journaled: JournaledDaemon, connect: Connect
) -> None:
    client = await connect()
    root = await client.submit("tree", "root")
    await until(lambda: len(journaled.registry.children(root.id)) == 2, what="the children")
    child = journaled.registry.children(root.id)[0]
    other = await client.submit("forever", "bystander")
    await client.abort(root.id)

    [decision] = await client.history(task_id=child.id)
    assert (decision.action, decision.task_id) == ("abort", root.id)
    assert journaled.registry.get(child.id).status is TaskStatus.FAILED
    assert await client.history(task_id=other.id) == []
    # Aborting an ended subtree again is recorded too, and found from the root.
    await client.abort(root.id)
    again = await client.history(task_id=root.id)
    assert [e.detail for e in again][-1] == "subtree: nothing live"


async def test_limit_keeps_the_latest_decisions(
    journaled: JournaledDaemon, connect: Connect
) -> None:
    client = await connect()
    tasks = [await client.submit("forever", f"job {n}") for n in range(5)]
    for task in tasks:
        await client.abort(task.id, only=True)
    latest = await client.history(limit=2)
    assert [e.task_id for e in latest] == [tasks[3].id, tasks[4].id]
    assert len(await client.history()) == 5
    assert await client.history(limit=0) == []
    with pytest.raises(BadRequest, match=f"Expected `int` <= {p.MAX_HISTORY}"):
        await client.history(limit=p.MAX_HISTORY + 1)


async def test_a_daemon_without_journal_says_so(daemon: Daemon, client: Client) -> None:
    with pytest.raises(InvalidState, match=r"keeps no journal \(started with --no-journal\)"):
        await client.history()


def test_sync_client_reads_history(runtime_dir: Path, tmp_path: Path) -> None:
    with ThreadedDaemon(runtime_dir, heartbeat=HEARTBEAT,
                        journal=tmp_path / "journal.sqlite3"):
        with SyncClient(runtime_dir, client_name="script", request_timeout=1.0) as client:
            task = client.submit("forever", "to stop")
            assert client.abort(task.id) == [task.id]
            [decision] = client.history(task_id=task.id)
            assert (decision.action, decision.client) == ("abort", "script")


async def test_a_client_cannot_claim_a_curve_key(
    journaled: JournaledDaemon, connect: Connect
) -> None:
    client = await connect()
    client.origin = p.Origin(user="mallory", host="x", client="cli", curve_key="k" * 40)
    task = await client.submit("forever", "target")
    await client.abort(task.id)
    [decision] = await client.history(task_id=task.id)
    assert decision.user == "mallory"
    assert decision.curve_key is None


@pytest.mark.parametrize("allow_list", [False, True], ids=["generated", "allow-list"])
async def test_curve_decisions_record_the_senders_key(
    runtime_dir: Path, tmp_path: Path, connect: Connect, allow_list: bool
) -> None:
    state_dir = tmp_path / "state"
    other = fresh_keys()
    if allow_list:
        mine = fresh_keys()
        state_dir.mkdir(mode=0o700)
        (state_dir / ALLOWED_CLIENTS_FILE).write_text(f"{mine.public} laptop\n{other.public}\n")
    else:  # the allow-list made on first use holds this user's own client key
        mine = load_or_create_client_keys(state_dir)
    async with JournaledDaemon(runtime_dir, tmp_path / "journal.sqlite3",
                               bind="tcp://127.0.0.1:0", state_dir=state_dir) as served:
        assert served.daemon.connection.commands.startswith("tcp://127.0.0.1:")
        client = await connect(client_keys=mine)
        # Whatever the client claims is overwritten by the key it connected with.
        client.origin = p.Origin(user="ana", host="box", client="deck", curve_key="k" * 40)
        task_id, prompt_id = await asking(client, served.registry, "deploy")
        await client.answer(prompt_id, "approve")
        await client.abort(task_id)  # already ended: recorded, nothing live
        decisions = await client.history(task_id=task_id)
        assert [(e.action, e.curve_key) for e in decisions] == [
            ("answer", mine.public), ("abort", mine.public)]
        # Another key pair, another recorded key.
        if allow_list:
            second = await connect(client_keys=other)
            extra = await second.submit("forever", "more")
            await second.abort(extra.id)
            [last] = await second.history(task_id=extra.id)
            assert last.curve_key == other.public
