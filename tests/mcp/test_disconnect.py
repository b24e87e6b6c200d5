"""The host going away, or giving up on a call, while a question waits in taskdeck."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
import sys

import anyio
import pytest

from tests.mcp.conftest import HOST, McpDeck, result_json, until_async


async def prompts_of(deck: McpDeck, task_id: int) -> list[dict]:
    shown = await asyncio.to_thread(deck.run, "show", str(task_id), "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["prompts"]


async def ended_as_lost(deck: McpDeck, task_id: int) -> dict:
    async def lost() -> bool:
        return (await deck.task(task_id))["status"] == "failed"

    await until_async(lost, what=f"task {task_id} to fail")
    return await deck.task(task_id)


def send(server: subprocess.Popen[bytes], message: dict) -> None:
    assert server.stdin is not None
    server.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
    server.stdin.flush()


class RawHost:
    """`taskdeck mcp` spoken to raw, as a host that can die or signal without a word."""

    def __init__(self, deck: McpDeck, name: str) -> None:
        params = deck.server_params()
        self.name = name
        self.server = subprocess.Popen(
            [params.command, *params.args], env=params.env, cwd=params.cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def ask(self, deck: McpDeck, question: str) -> dict:
        """Initialize, call ask_human, and return the task once it asks."""
        send(self.server, {"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": self.name, "version": "1"}}})
        assert self.server.stdout is not None
        assert b'"id":1' in await asyncio.to_thread(self.server.stdout.readline)
        send(self.server, {"method": "notifications/initialized"})
        send(self.server, {"id": 2, "method": "tools/call", "params": {
            "name": "ask_human", "arguments": {"question": question}}})
        return await deck.asking(self.name)

    async def ended(self) -> None:
        self.server.stdin = None  # so communicate() only reads
        out, err = await asyncio.to_thread(self.server.communicate, timeout=20)
        assert self.server.returncode == 0, err
        assert b"Traceback" not in err, err

    def kill(self) -> None:
        if self.server.poll() is None:
            self.server.kill()
            self.server.wait()


async def closed_and_lost(deck: McpDeck, task: dict, reason: str) -> None:
    [prompt] = await prompts_of(deck, task["id"])
    assert prompt["state"] != "pending"
    assert prompt["answered_by"] == "taskdeck mcp"
    assert reason in prompt["reason"]
    ended = await ended_as_lost(deck, task["id"])
    assert ended["end_reason"] == "lost"


def pipe_ends(server: subprocess.Popen[bytes]) -> None:
    """A crashed host sends nothing more: its pipe just ends."""
    assert server.stdin is not None
    server.stdin.close()


def signals(server: subprocess.Popen[bytes]) -> None:
    """Claude Code ends its servers with SIGINT, then SIGTERM 100 ms later."""
    server.send_signal(signal.SIGINT)
    server.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("going", [pipe_ends, signals])
async def test_a_host_that_goes_mid_question_closes_it_and_the_task_is_lost(
    deck: McpDeck, going: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    """Spoken raw: no client would go without a word, a crashing host does."""
    host = RawHost(deck, "crashy")
    try:
        task = await host.ask(deck, "Still there?")
        going(host.server)
        await host.ended()
    finally:
        host.kill()
    await closed_and_lost(deck, task, "crashy disconnected before anyone answered")


async def test_a_host_that_quits_mid_question_closes_it_and_the_task_is_lost(
    deck: McpDeck,
) -> None:
    """The SDK's client leaving with a call in flight (it cancels the call, then closes)."""
    async with deck.connect() as mcp:
        asking = asyncio.create_task(mcp.call_tool("ask_human", {"question": "Still there?"}))
        task = await deck.asking()
        asking.cancel()
    await closed_and_lost(deck, task, HOST)


async def test_a_call_the_host_gives_up_on_closes_its_question_and_the_session_goes_on(
    deck: McpDeck,
) -> None:
    async with deck.connect() as mcp:
        with anyio.move_on_after(30) as scope:  # cancelled below, once the question is up
            asking = asyncio.create_task(mcp.call_tool("ask_human", {"question": "Hurry?"}))
            task = await deck.asking()
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        assert not scope.cancelled_caught

        async def closed() -> bool:
            return (await prompts_of(deck, task["id"]))[0]["state"] != "pending"

        await until_async(closed, what="the question to close")
        [prompt] = await prompts_of(deck, task["id"])
        assert "stopped waiting" in prompt["reason"]
        assert (await deck.task(task["id"]))["status"] == "in_progress"
        assert result_json(await mcp.call_tool("report_progress", {"text": "moving on"}))
    assert (await deck.task(task["id"]))["status"] == "finished"
