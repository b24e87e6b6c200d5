"""No answer nobody gave over MCP: a refusing choice is a denial however many choices are
offered, and `taskdeck mcp --timeout` bounds every question whose call names no timeout."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.mcp.conftest import McpDeck, result_json

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("answer", "verdict"), [("no", "denied"), ("Cancel", "denied"),
                                                  ("yes", "approved")])
async def test_ask_human_counts_a_refusing_choice_as_a_denial(
    deck: McpDeck, answer: str, verdict: str
) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool(
            "ask_human", {"question": "Delete the branch?", "choices": ["yes", "no", "Cancel"]}))
        task = await deck.asking()
        await deck.answer(task["id"], answer)
        data = result_json(await call)
        assert (data["status"], data["answer"], data["verdict"]) == ("answered", answer, verdict)


async def test_the_servers_timeout_bounds_ask_human_unless_the_call_names_one(
    deck: McpDeck,
) -> None:
    async with deck.connect("--timeout", "0.5") as mcp:
        data = result_json(await mcp.call_tool("ask_human", {"question": "Anyone?"}))
        assert data["status"] == "timed_out"
        call = asyncio.create_task(mcp.call_tool(
            "ask_human", {"question": "Still there?", "timeout_s": 30}))
        task = await deck.asking()
        shown = await asyncio.to_thread(deck.run, "show", str(task["id"]), "--json")
        [asked] = [p for p in json.loads(shown.stdout)["prompts"] if p["state"] == "pending"]
        assert asked["timeout"] == 30
        await deck.answer(task["id"], "approve")
        assert result_json(await call)["status"] == "answered"


async def test_without_a_timeout_ask_human_waits_for_the_person(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("ask_human", {"question": "Take your time?"}))
        task = await deck.asking()
        shown = await asyncio.to_thread(deck.run, "show", str(task["id"]), "--json")
        [asked] = json.loads(shown.stdout)["prompts"]
        assert asked["timeout"] is None
        await deck.answer(task["id"], "approve")
        assert result_json(await call)["status"] == "answered"
