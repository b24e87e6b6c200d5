"""Limits and hostile clients: counters that cannot overflow the wire, bounded replies, dedupe scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.client import Client
from core.errors import AlreadyAnswered, BadRequest, Unavailable
from core.journal import Journal
from core.model import PromptState
from core.runtime import ConnectionInfo, write_connection
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry

Connect = Callable[..., Awaitable[Client]]

MAX_COUNT = 2**53
"""The documented ceiling of token totals."""


async def test_token_totals_saturate_and_the_state_stays_encodable(
    tmp_path: Path, runtime_dir: Path, connect: Connect
) -> None:
    journal_path = tmp_path / "journal.db"
    registry = make_registry()
    journal = Journal.open(journal_path)
    journal.attach(registry)
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT, journal=journal):
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
    await registry.close()
    journal.close()
    reopened = Journal.open(journal_path)
    try:
        tasks, _ = reopened.load()
    finally:
        reopened.close()
    assert [(t.prompt_tokens, t.completion_tokens, t.result) for t in tasks] == [
        (MAX_COUNT, MAX_COUNT, "done")
    ]
