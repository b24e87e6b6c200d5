"""Every tool of `taskdeck mcp`, called by the MCP SDK's client, against a real daemon."""

from __future__ import annotations

import asyncio
import json

from tests.mcp.conftest import HOST, McpDeck, error_text, result_json


async def test_the_session_is_a_task_named_after_the_host(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        [task] = await deck.sessions()  # opened once the host said who it is, before any call
        assert task["status"] == "in_progress"
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


async def test_request_approval_carries_a_structured_action(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("request_approval", {
            "action": "deploy", "details": {"command": "make deploy", "env": "prod"},
            "reason": "the release is tagged"}))
        task = await deck.asking()
        shown = await asyncio.to_thread(deck.run, "show", str(task["id"]), "--json")
        [prompt] = [p for p in json.loads(shown.stdout)["prompts"]]
        assert prompt["action"]["tool"] == "deploy"
        assert prompt["action"]["agent"] == "mcp"
        assert prompt["action"]["input"] == {"command": "make deploy", "env": "prod"}
        assert "the release is tagged" in prompt["question"]
        await deck.answer(task["id"], "approve")
        data = result_json(await call)
        assert data["approved"] is True
        assert data["status"] == "approved"


async def test_a_denial_carries_its_reason_and_a_reply_is_no_approval(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("request_approval", {"action": "rm -rf build"}))
        task = await deck.asking()
        await deck.answer(task["id"], "deny", "--reason", "not on a Friday")
        data = result_json(await call)
        assert (data["approved"], data["status"], data["reason"]) == (
            False, "denied", "not on a Friday")
        assert "not on a Friday" in data["message"]

        call = asyncio.create_task(mcp.call_tool("request_approval", {"action": "push"}))
        task = await deck.asking()
        await deck.answer(task["id"], "yes, but push to staging")
        data = result_json(await call)
        assert (data["approved"], data["status"]) == (False, "replied")
        assert data["answer"] == "yes, but push to staging"


async def test_nobody_answering_in_time_is_a_clear_no(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        data = result_json(await mcp.call_tool(
            "request_approval", {"action": "deploy", "timeout_s": 0.5}))
        assert (data["approved"], data["status"]) == (False, "timed_out")
        data = result_json(await mcp.call_tool(
            "ask_human", {"question": "Anyone?", "timeout_s": 0.5}))
        assert data["status"] == "timed_out"
        assert "never as a yes" in data["message"]
        [task] = [t for t in await deck.ls() if t["agent"] == HOST]
        assert task["status"] == "in_progress"  # the session goes on


async def test_an_abort_answers_the_waiting_question_and_every_later_call(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        call = asyncio.create_task(mcp.call_tool("request_approval", {"action": "deploy"}))
        task = await deck.asking()
        aborted = await asyncio.to_thread(deck.run, "abort", str(task["id"]))
        assert aborted.returncode == 0, aborted.stderr
        data = result_json(await call)
        assert (data["approved"], data["status"]) == (False, "aborted")
        assert "stop" in data["message"]
        assert "aborted" in error_text(
            await mcp.call_tool("report_progress", {"text": "still here"}))
        data = result_json(await mcp.call_tool("ask_human", {"question": "go on?"}))
        assert data["status"] == "aborted"
        sessions = [t for t in await deck.ls() if t["agent"] == HOST]
        assert [t["status"] for t in sessions] == ["failed"]  # nothing opened again


async def test_subtasks_show_the_plan_and_tokens_add_up(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        first = result_json(await mcp.call_tool("start_subtask", {"description": "read the code"}))
        inner = result_json(await mcp.call_tool(
            "start_subtask", {"description": "grep", "parent_id": first["subtask_id"]}))
        assert result_json(await mcp.call_tool("report_progress", {
            "text": "grepping", "prompt_tokens": 100, "completion_tokens": 7,
            "subtask_id": inner["subtask_id"]}))
        assert result_json(await mcp.call_tool("report_progress", {
            "text": "grepping more", "prompt_tokens": 50, "subtask_id": inner["subtask_id"]}))
        assert (await deck.task(inner["subtask_id"]))["progress"] == "grepping more"
        done = result_json(await mcp.call_tool(
            "finish_subtask", {"subtask_id": inner["subtask_id"], "result": "3 hits"}))
        assert done["status"] == "finished"
        failed = result_json(await mcp.call_tool(
            "finish_subtask", {"subtask_id": first["subtask_id"], "error": "gave up"}))
        assert failed["status"] == "failed"
        tasks = {t["id"]: t for t in await deck.ls()}
        [root] = [t for t in tasks.values() if t["parent_id"] is None]
        assert tasks[first["subtask_id"]]["parent_id"] == root["id"]
        grep = tasks[inner["subtask_id"]]
        assert (grep["parent_id"], grep["result"]) == (first["subtask_id"], "3 hits")
        assert (grep["prompt_tokens"], grep["completion_tokens"]) == (150, 7)
        assert tasks[first["subtask_id"]]["error"] == "gave up"
        assert "no sub-task" in error_text(await mcp.call_tool(
            "finish_subtask", {"subtask_id": inner["subtask_id"], "result": "again"}))
        assert "no sub-task" in error_text(await mcp.call_tool(
            "report_progress", {"text": "x", "subtask_id": root["id"] + 1000}))
    # The host closed the session: the session's task finished, open sub-tasks failed.
    tasks = await deck.ls()
    [root] = [t for t in tasks if t["parent_id"] is None]
    assert root["status"] == "finished"


async def test_bad_arguments_are_clear_tool_errors_and_the_server_lives_on(deck: McpDeck) -> None:
    async with deck.connect() as mcp:
        cases = [
            ("ask_human", {}, "missing required field `question`"),
            ("ask_human", {"question": ""}, "length >= 1"),
            ("ask_human", {"question": "q", "timeout": 3}, "unknown field `timeout`"),
            ("ask_human", {"question": "q", "choices": "a,b"}, "at `choices`"),
            ("ask_human", {"question": "q", "timeout_s": -1}, "at `timeout_s`"),
            ("request_approval", {"details": {}}, "missing required field `action`"),
            ("request_approval", {"action": "x", "details": "rm"}, "at `details`"),
            ("report_progress", {"text": "t", "prompt_tokens": -5}, "at `prompt_tokens`"),
            ("finish_subtask", {"subtask_id": 1, "result": "a", "error": "b"},
             "a result or an error, not both"),
            ("no_such_tool", {}, "no tool named 'no_such_tool'"),
            ("ask_human", {"question": "q", "subtask_id": 999}, "no sub-task 999"),
            ("request_approval", {"action": "a", "subtask_id": 999}, "no sub-task 999"),
        ]
        for name, arguments, expected in cases:
            text = error_text(await mcp.call_tool(name, arguments))
            assert expected in text, (name, text)
            assert "Traceback" not in text
        assert result_json(await mcp.call_tool("report_progress", {"text": "still alive"}))


async def test_parallel_questions_on_one_task_queue_up(deck: McpDeck) -> None:
    """Claude Code asks for parallel tool calls at once; a task waits on one question at a time."""
    async with deck.connect() as mcp:
        first = asyncio.create_task(mcp.call_tool("permission_prompt", {
            "tool_name": "Bash", "input": {"command": "make one"}}))
        second = asyncio.create_task(mcp.call_tool("permission_prompt", {
            "tool_name": "Bash", "input": {"command": "make two"}}))
        asked = await deck.asking()
        await deck.answer(asked["id"], "approve")
        again = await deck.asking()
        assert again["blocked_on"]["prompt_id"] != asked["blocked_on"]["prompt_id"]
        await deck.answer(again["id"], "deny")
        decisions = {}
        for call in (first, second):
            [block] = (await call).content
            answer = json.loads(block.text)
            decisions[answer.get("updatedInput", {}).get("command")] = answer["behavior"]
        assert sorted(decisions.values()) == ["allow", "deny"]


async def test_a_daemon_restarted_without_its_journal_gets_a_new_session_task(
    deck: McpDeck,
) -> None:
    async with deck.connect() as mcp:
        [first] = await deck.sessions()
        deck.stop()
        deck.serve()  # --no-journal: the session's task is gone
        assert "no task" in error_text(await mcp.call_tool("report_progress", {"text": "a"}))
        assert result_json(await mcp.call_tool("report_progress", {"text": "b"}))
        [again] = await deck.sessions()
        assert (again["progress"], again["key"]) == ("b", first["key"])
