"""Limits and hostile clients: counters that cannot overflow the wire, bounded replies, dedupe scope."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.client import Client, SyncClient
from core.errors import AlreadyAnswered, BadRequest, Unavailable
from core.assembly import Assembly
from core.journal import Journal
from core.model import PromptState
from core.runtime import ConnectionInfo, connection_path, read_connection, write_connection
from core.server import Daemon
from tests.support import until, until_sync
from tests.wire.conftest import HEARTBEAT, make_registry

Connect = Callable[..., Awaitable[Client]]

ROOT = Path(__file__).resolve().parents[2]

MAX_COUNT = 2**53
"""The documented ceiling of token totals."""


async def test_token_totals_saturate_and_the_state_stays_encodable(
    tmp_path: Path, runtime_dir: Path, connect: Connect
) -> None:
    journal_path = tmp_path / "journal.db"
    async with Assembly(lambda first_id: make_registry(first_id=first_id),
                        runtime_dir=runtime_dir, journal=journal_path, heartbeat=HEARTBEAT):
        client = await connect()
        task = await client.open_task("spends a lot")
        for _ in range(2**11 + 1):  # past 2^64 without saturation: unencodable
            await client.request(p.Tokens(task_id=task.id, prompt=MAX_COUNT, completion=MAX_COUNT))
        with pytest.raises(BadRequest, match="<= 9007199254740992"):
            await client.request(p.Tokens(task_id=task.id, prompt=MAX_COUNT + 1))
        got, _ = await client.get(task.id)
        assert (got.prompt_tokens, got.completion_tokens) == (MAX_COUNT, MAX_COUNT)
        snapshot = await client.snapshot()
        assert [t.prompt_tokens for t in snapshot.tasks if t.id == task.id] == [MAX_COUNT]
        assert [t.id for t in await client.list_tasks()] == [task.id]
        await task.finish("done")
    reopened = Journal.open(journal_path)
    try:
        tasks, _ = reopened.load()
    finally:
        reopened.close()
    assert [(t.prompt_tokens, t.completion_tokens, t.result) for t in tasks] == [
        (MAX_COUNT, MAX_COUNT, "done")
    ]


async def raw_call(info: ConnectionInfo, request: p.Request) -> p.Reply:
    """One request on a fresh REQ socket, sent exactly as given (id and origin included)."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(info.commands)
        await sock.send(p.encode(request))
        assert await sock.poll(5000), "no reply"
        return p.REPLY_DECODER.decode(await sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()


async def test_a_remembered_id_answers_any_command_from_any_client(daemon: Daemon) -> None:
    """As docs/protocol.md says: the id is the whole key, and refusals are remembered."""

    def request(body: p.Command, client: str, rid: str) -> p.Request:
        origin = p.Origin(user="u", host="h", pid=1, client=client)
        return p.Request(id=rid, version=p.PROTOCOL_VERSION, body=body, origin=origin)

    first = await raw_call(daemon.connection, request(p.Open(description="one"), "a", "id-1"))
    assert first.ok and isinstance(first.result, p.TaskResult)
    task_id = first.result.task.id
    other = await raw_call(daemon.connection, request(p.Finish(task_id=task_id), "b", "id-1"))
    assert other == first  # nothing finished: the first reply again
    refused = await raw_call(daemon.connection, request(p.Ask(task_id=999, question="?"), "a", "id-2"))
    assert not refused.ok and refused.error.code == "UNKNOWN_TASK"  # type: ignore[union-attr]
    again = await raw_call(daemon.connection, request(p.Finish(task_id=task_id), "a", "id-2"))
    assert again == refused
    assert [t.status.value for t in daemon.registry.list()] == ["in_progress"]


async def test_a_dead_daemons_connection_file_is_reported_without_retries(
    tmp_path: Path, runtime_dir: Path
) -> None:
    runtime_dir.mkdir(mode=0o700)
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    write_connection(runtime_dir, ConnectionInfo(
        events=f"ipc://{tmp_path}/e", commands=f"ipc://{tmp_path}/c", pid=gone.pid
    ))
    client = Client(runtime_dir, request_timeout=1.0, retries=5)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"pid {gone.pid}, which has exited"):
        await client.connect()
        await client.hello()
    await client.close()
    # nothing listens on its socket: told at once (tests/bridges/test_gone.py times it),
    # and never after 5 x 1 s of retries
    assert time.monotonic() - started < 2.5


@pytest.mark.timeout(30)
async def test_a_request_to_a_killed_daemon_fails_after_one_timeout(runtime_dir: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.wire.procs", "serve", str(runtime_dir),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert (await asyncio.wait_for(server.stdout.readline(), 15)).startswith(b"ready")
        async with Client(runtime_dir, request_timeout=0.5, retries=6) as client:
            await client.hello()
            server.kill()
            await server.wait()
            started = time.monotonic()
            with pytest.raises(Unavailable, match="which has exited"):
                await client.hello()
            assert time.monotonic() - started < 1.5  # one timeout, not six
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


def low_fd_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@pytest.mark.timeout(60)
def test_more_connections_than_file_descriptors_do_not_kill_the_daemon(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    limit = 1024
    env = {**os.environ, "TASKDECK_STATE_DIR": str(tmp_path / "state")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--no-journal", "--runtime-dir", str(runtime)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=low_fd_limit(limit),
    )
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 4096)
    hammer: list[zmq.Socket[Any]] = []
    try:
        until_sync(lambda: connection_path(runtime).exists() or daemon.poll() is not None,
                   timeout=15, what="the daemon to start")
        before = read_connection(runtime)
        assert before.pid == daemon.pid
        hello = p.encode(p.Request(id="h", version=p.PROTOCOL_VERSION, body=p.Hello()))
        for n in range(4 * limit):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(before.commands if n % 2 else before.events)
            if n % 2:
                sock.send_multipart([b"", hello])
            hammer.append(sock)
        assert daemon.stderr is not None
        told = []  # the cap engaged: the daemon says so, and lives on
        for line in iter(daemon.stderr.readline, ""):
            told.append(line)
            if "connection refused" in line or "stops listening" in line:
                break
        else:
            raise AssertionError(f"the daemon died (exit {daemon.wait()}): {''.join(told)}")
        assert daemon.poll() is None
        for sock in hammer:
            sock.close(linger=0)
        hammer.clear()
        assert daemon.poll() is None
        assert read_connection(runtime) == before  # same endpoints, same pid
        with SyncClient(runtime, request_timeout=1.0, retries=10) as client:
            assert client.hello()["pid"] == daemon.pid
        daemon.terminate()
        assert daemon.wait(10) == 0
        assert not connection_path(runtime).exists()
    finally:
        for sock in hammer:
            sock.close(linger=0)
        ctx.term()
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(10)
