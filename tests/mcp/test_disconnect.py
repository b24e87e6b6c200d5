"""The host going away, or giving up on a call, while a question waits in taskdeck."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import anyio

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


async def test_a_host_that_dies_mid_question_closes_it_and_the_task_is_lost(
    deck: McpDeck,
) -> None:
    """A crashed host sends nothing more: its pipe just ends (spoken raw, as no client would)."""
    params = deck.server_params()
    server = subprocess.Popen([params.command, *params.args], env=params.env, cwd=params.cwd,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        send(server, {"id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "crashy", "version": "1"}}})
        assert server.stdout is not None
        assert b'"id":1' in await asyncio.to_thread(server.stdout.readline)
        send(server, {"method": "notifications/initialized"})
        send(server, {"id": 2, "method": "tools/call", "params": {
            "name": "ask_human", "arguments": {"question": "Still there?"}}})
        task = await deck.asking("crashy")
        server.stdin.close()  # the host is gone
        server.stdin = None  # so communicate() only reads
        out, err = await asyncio.to_thread(server.communicate, timeout=20)
        assert server.returncode == 0, err
        assert b"Traceback" not in err, err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    [prompt] = await prompts_of(deck, task["id"])
    assert prompt["state"] != "pending"
    assert prompt["answered_by"] == "taskdeck mcp"
    assert "crashy disconnected before anyone answered" in prompt["reason"]
    ended = await ended_as_lost(deck, task["id"])
    assert ended["end_reason"] == "lost"


async def test_a_host_that_quits_mid_question_closes_it_and_the_task_is_lost(
    deck: McpDeck,
) -> None:
    """The SDK's client leaving with a call in flight (it cancels the call, then closes)."""
    async with deck.connect() as mcp:
        asking = asyncio.create_task(mcp.call_tool("ask_human", {"question": "Still there?"}))
        task = await deck.asking()
        asking.cancel()
    [prompt] = await prompts_of(deck, task["id"])
    assert prompt["state"] != "pending"
    assert prompt["answered_by"] == "taskdeck mcp"
    assert HOST in prompt["reason"]
    ended = await ended_as_lost(deck, task["id"])
    assert ended["end_reason"] == "lost"


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
