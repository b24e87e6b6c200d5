"""A LangChain agent with `HumanInTheLoopMiddleware` (a fake model, a real tool) run
through the adapter: its batched `HITLRequest` asked in taskdeck, answered as decisions."""

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

    def __init__(self, allowed: list[str]) -> None:
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
            interrupt_on={"write_file": {"allowed_decisions": allowed}})
        self.graph = create_agent(model=model, tools=[write_file], middleware=[middleware],
                                  checkpointer=InMemorySaver())

    async def run(self, deck: Deck, name: str) -> Any:
        return await arun_graph(self.graph, {"messages": [{"role": "user", "content": "go"}]},
                                {"configurable": {"thread_id": name}},
                                runtime_dir=deck.runtime_dir)


def tool_result(output: Any) -> ToolMessage:
    [message] = [m for m in output["messages"] if isinstance(m, ToolMessage)]
    return message


async def test_edit_runs_the_tool_with_the_edited_args(deck: Deck, person: Person) -> None:
    agent = Agent(["approve", "edit", "reject"])
    run = asyncio.ensure_future(agent.run(deck, "lc-edit"))
    prompt = await person.answer("edit", '{"path": "/srv/b.txt", "text": "bye"}')
    assert prompt.choices == ["approve", "edit", "deny"]
    assert prompt.action is not None and prompt.action.tool == "write_file"
    assert prompt.question.startswith("Tool execution requires approval")
    output = await asyncio.wait_for(run, 20)
    assert agent.written == [("/srv/b.txt", "bye")]
    assert tool_result(output).content.endswith("wrote /srv/b.txt")


@pytest.mark.parametrize(("allowed", "answer", "reason", "said"), [
    (["approve", "reject"], "deny", "not that file", "with reason: not that file"),
    (["approve", "reject"], "use /tmp instead", None, "with reason: use /tmp instead"),
    (["approve", "respond"], "the file already says hi", None, "the file already says hi"),
], ids=["deny-with-reason", "reply-as-rejection", "reply-as-respond"])
async def test_deny_and_a_reply_reach_the_model_and_the_tool_does_not_run(
        deck: Deck, person: Person, allowed: list[str], answer: str, reason: str | None,
        said: str) -> None:
    agent = Agent(allowed)
    run = asyncio.ensure_future(agent.run(deck, "lc-no"))
    await person.answer(answer, reason)
    output = await asyncio.wait_for(run, 20)
    assert agent.written == []
    assert said in tool_result(output).content
