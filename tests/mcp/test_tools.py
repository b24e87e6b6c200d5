"""Every tool of `taskdeck mcp`, called by the MCP SDK's client, against a real daemon."""

from __future__ import annotations

import asyncio

from tests.mcp.conftest import HOST, McpDeck, error_text, result_json


async def test_the_session_is_a_task_named_after_the_host(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        listed = {tool.name for tool in (await mcp.list_tools()).tools}
        assert listed == {"ask_human", "request_approval", "report_progress", "start_subtask",
                          "finish_subtask", "permission_prompt"}
        assert result_json(await mcp.call_tool("report_progress", {"text": "reading"}))
        [task] = [t for t in await deck.ls() if t["agent"] == HOST]
        assert task["status"] == "in_progress"
        assert task["progress"] == "reading"
        assert task["description"].startswith(f"{HOST} 9.1 (MCP) in ")
        assert task["key"].startswith(f"mcp:{HOST}:")


async def test_ask_human_returns_the_answer_and_who_gave_it(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool(
            "ask_human", {"question": "Which colour?", "choices": ["red", "green", "blue"]}))
        task = await deck.asking()
        assert task["blocked_on"]["question"] == "Which colour?"
        assert task["blocked_on"]["choices"] == ["red", "green", "blue"]
        await deck.answer(task["id"], "green")
        data = result_json(await call)
        assert data["status"] == "answered"
        assert data["answer"] == "green"
        assert data["verdict"] == "approved"
        assert data["answered_by"]
        assert (await deck.task(task["id"]))["status"] == "in_progress"
