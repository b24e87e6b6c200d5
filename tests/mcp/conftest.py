"""A real daemon, and `taskdeck mcp` started and driven by the MCP SDK's own stdio client."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, Implementation

from tests.cli.conftest import Deck
from tests.support import until

HOST = "pytest-host"
"""The client name our test host gives in `initialize`: the session task's agent."""


class McpDeck(Deck):
    """A deck that also serves MCP: `connect()` starts `taskdeck mcp` under an SDK client."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.errlog = tmp / "mcp.stderr"

    def server_params(self, *extra: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=["-m", "core.cli", "mcp", "--lease", "1", *extra],
            env={k: v for k, v in self.env.items() if isinstance(v, str)},
            cwd=str(self.runtime_dir.parent),
        )

    @asynccontextmanager
    async def connect(self, *extra: str, host: str = HOST) -> AsyncIterator[ClientSession]:
        with open(self.errlog, "a") as errlog:
            async with stdio_client(self.server_params(*extra), errlog=errlog) as (read, write):
                async with ClientSession(
                    read, write, client_info=Implementation(name=host, version="9.1")
                ) as session:
                    await session.initialize()
                    yield session

    async def ls(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.tasks)

    async def answer(self, task_id: int, *words: str) -> None:
        result = await asyncio.to_thread(self.run, "answer", str(task_id), *words)
        assert result.returncode == 0, result.stderr

    async def asking(self, agent: str = HOST) -> dict[str, Any]:
        """Wait until a task of `agent` asks a question; return it."""
        found: list[dict[str, Any]] = []

        async def look() -> bool:
            found[:] = [t for t in await self.ls() if t["agent"] == agent and t["blocked_on"]]
            return bool(found)

        await until_async(look, what=f"a task of {agent} to ask")
        return found[0]

    async def sessions(self, host: str = HOST) -> list[dict[str, Any]]:
        """The session tasks of `host`, once there is one."""
        found: list[dict[str, Any]] = []

        async def look() -> bool:
            found[:] = [t for t in await self.ls() if t["agent"] == host and t["parent_id"] is None]
            return bool(found)

        await until_async(look, what=f"a session task of {host}")
        return found

    async def task(self, task_id: int) -> dict[str, Any]:
        return next(t for t in await self.ls() if t["id"] == task_id)

    def server_errors(self) -> str:
        return self.errlog.read_text() if self.errlog.exists() else ""


async def until_async(condition, *, timeout: float = 15.0, what: str = "") -> None:
    """`until` for an async condition (each check runs `taskdeck ls`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def result_json(result: CallToolResult) -> dict[str, Any]:
    """A tool's JSON answer, checked to say the same as text and as structured content."""
    assert not result.is_error, result.content
    [block] = result.content
    data = json.loads(block.text)
    assert result.structured_content == data
    return data


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    [block] = result.content
    return block.text


@pytest.fixture
def deck(tmp_path: Path) -> Iterator[McpDeck]:
    with McpDeck(tmp_path).running() as deck:
        yield deck
    assert "Traceback" not in deck.server_errors(), deck.server_errors()


__all__ = ["HOST", "McpDeck", "error_text", "result_json", "until"]
