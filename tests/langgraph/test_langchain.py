"""A LangChain agent with `HumanInTheLoopMiddleware` (a scripted model, a real tool) run
through the adapter: its batched `HITLRequest` or per-call `tool_approval` asked in
taskdeck, answered as decisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from core.adapters.langgraph import arun_graph
from tests.cli.conftest import Deck
from tests.langgraph.conftest import Person


class ScriptedModel(GenericFakeChatModel):
    """Says what it is given, in order; tools are bound by name only."""

    def bind_tools(self, tools: Any, **options: Any) -> ScriptedModel:
        return self


class Agent:
    """An agent whose model calls `write_file` once, gated by the middleware."""

    def __init__(self, allowed: list[str], mode: str = "batched") -> None:
        self.written: list[tuple[str, str]] = []

        @tool
        def write_file(path: str, text: str) -> str:
            """Write text to a file."""
            self.written.append((path, text))
            return f"wrote {path}"

        model = ScriptedModel(messages=iter([
            AIMessage(content="", tool_calls=[{"name": "write_file", "id": "call-1",
                                               "args": {"path": "/srv/a.txt", "text": "hi"}}]),
            AIMessage(content="done"),
        ]))
        middleware = HumanInTheLoopMiddleware(
            interrupt_on={"write_file": {"allowed_decisions": allowed}},
            interrupt_mode=mode)  # type: ignore[arg-type]
        self.graph = create_agent(model=model, tools=[write_file], middleware=[middleware],
                                  checkpointer=InMemorySaver())

    async def run(self, deck: Deck, name: str) -> Any:
        return await arun_graph(self.graph, {"messages": [{"role": "user", "content": "go"}]},
                                {"configurable": {"thread_id": name}},
                                runtime_dir=deck.runtime_dir)


def tool_result(output: Any) -> ToolMessage:
    [message] = [m for m in output["messages"] if isinstance(m, ToolMessage)]
    return message


@pytest.mark.parametrize("mode", ["batched", "per_call"])
async def test_edit_runs_the_tool_with_the_edited_args(
        deck: Deck, person: Person, mode: str) -> None:
    agent = Agent(["approve", "edit", "reject"], mode)
    run = asyncio.ensure_future(agent.run(deck, "lc-edit"))
    prompt = await person.answer("edit", '{"path": "/srv/b.txt", "text": "bye"}')
    assert prompt.choices == ["approve", "edit", "deny"]
    assert prompt.action is not None and prompt.action.tool == "write_file"
    assert prompt.question.startswith("Tool execution requires approval")
    output = await asyncio.wait_for(run, 20)
    assert agent.written == [("/srv/b.txt", "bye")]
    task, _ = await person.client.get(prompt.task_id)
    assert task.result == "done"  # the model's last word, not the whole state
    assert tool_result(output).content.endswith("wrote /srv/b.txt")


@pytest.mark.parametrize(("mode", "allowed", "answer", "reason", "said"), [
    ("batched", ["approve", "reject"], "deny", "not that file", "with reason: not that file"),
    ("batched", ["approve", "reject"], "use /tmp", None, "with reason: use /tmp"),
    ("batched", ["approve", "respond"], "it says hi", None, "it says hi"),
    ("per_call", ["approve", "reject"], "deny", "not that file", "with reason: not that file"),
    ("per_call", ["respond"], "it says hi", None, "it says hi"),
], ids=["deny-with-reason", "reply-as-rejection", "reply-as-respond", "per-call-deny",
        "per-call-respond"])
async def test_deny_and_a_reply_reach_the_model_and_the_tool_does_not_run(
        deck: Deck, person: Person, mode: str, allowed: list[str], answer: str,
        reason: str | None, said: str) -> None:
    agent = Agent(allowed, mode)
    run = asyncio.ensure_future(agent.run(deck, "lc-no"))
    await person.answer(answer, reason)
    output = await asyncio.wait_for(run, 20)
    assert agent.written == []
    assert said in tool_result(output).content
