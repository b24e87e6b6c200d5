"""`permission_prompt` as Claude Code calls it: one text block of JSON, allow only on a yes."""

from __future__ import annotations

import asyncio
import json

from mcp.types import CallToolResult

from tests.mcp.conftest import McpDeck

CALL = {"tool_name": "Bash", "input": {"command": "make test", "description": "run tests"},
        "tool_use_id": "toolu_01"}


def decision(result: CallToolResult) -> dict:
    """Claude Code's contract: not an error, no structured content, one text block of JSON."""
    assert not result.is_error
    assert result.structured_content is None
    [block] = result.content
    assert block.type == "text"
    return json.loads(block.text)


async def test_approve_allows_with_the_input_as_asked(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", CALL))
        task = await deck.asking()
        assert task["blocked_on"]["summary"] == "make test"
        assert "Bash" in task["blocked_on"]["question"]
        await deck.answer(task["id"], "approve")
        assert decision(await call) == {"behavior": "allow", "updatedInput": CALL["input"]}


async def test_deny_a_reply_an_abort_and_a_timeout_all_deny(deck: McpDeck) -> None:
    async with deck.connect("--timeout", "0.5", host="impatient") as mcp:
        timed_out = decision(await mcp.call_tool("permission_prompt", CALL))
        assert timed_out["behavior"] == "deny"
        assert "nobody answered" in timed_out["message"]

    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", CALL))
        task = await deck.asking()
        await deck.answer(task["id"], "deny", "--reason", "tests are red anyway")
        assert decision(await call) == {"behavior": "deny", "message": "tests are red anyway"}

        call = asyncio.create_task(mcp.call_tool("permission_prompt", CALL))
        task = await deck.asking()
        await deck.answer(task["id"], "run only the unit tests")
        assert decision(await call) == {"behavior": "deny", "message": "run only the unit tests"}

        call = asyncio.create_task(mcp.call_tool("permission_prompt", CALL))
        task = await deck.asking()
        await asyncio.to_thread(deck.run, "abort", str(task["id"]))
        aborted = decision(await call)
        assert (aborted["behavior"], aborted["interrupt"]) == ("deny", True)
        assert "aborted" in aborted["message"]


async def test_bad_input_denies_naming_the_cause(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        for arguments in ({}, {"tool_name": ""}, {"tool_name": "Bash", "input": "ls"}):
            denied = decision(await mcp.call_tool("permission_prompt", arguments))
            assert denied["behavior"] == "deny"
            assert denied["message"].startswith("taskdeck could not ask a person: ")


async def test_no_daemon_denies_naming_the_cause(deck: McpDeck) -> None:
    deck.stop()
    async with deck.connect() as mcp:
        denied = decision(await mcp.call_tool("permission_prompt", CALL))
        assert denied["behavior"] == "deny"
        assert "taskdeck could not ask a person" in denied["message"]


async def test_approval_rules_decide_for_a_person(deck: McpDeck) -> None:
    """Questions with an action go through the daemon's rules; the result says which decided."""
    for rule in (("allow", "Bash(make test)"), ("deny", "Bash(curl *)"),
                 ("deny", "deploy", "--everything", "--agent", "mcp")):
        added = await asyncio.to_thread(deck.run, "rules", "add", *rule)
        assert added.returncode == 0, added.stderr
    async with deck.connect() as mcp:
        assert decision(await mcp.call_tool("permission_prompt", CALL)) == {
            "behavior": "allow", "updatedInput": CALL["input"]}
        denied = decision(await mcp.call_tool("permission_prompt", {
            "tool_name": "Bash", "input": {"command": "curl x | sh"}}))
        assert denied["behavior"] == "deny"
        assert "Bash(curl *)" in denied["message"]
        refused = json.loads((await mcp.call_tool(
            "request_approval", {"action": "deploy", "details": {"env": "prod"}})).content[0].text)
        assert (refused["approved"], refused["status"]) == (False, "denied")
        assert "rule" in refused["answered_by"]
