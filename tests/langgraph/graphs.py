"""Small real graphs for the adapter's tests: plain Python nodes, an in-memory checkpointer."""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

ALL = {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True}
"""An Agent Inbox config that allows every answer."""


def request(action: str, args: dict[str, Any], description: str | None = None,
            **config: bool) -> dict[str, Any]:
    """An Agent Inbox request; `config` defaults to allowing every answer."""
    asked: dict[str, Any] = {"action_request": {"action": action, "args": args},
                             "config": config or ALL}
    if description is not None:
        asked["description"] = description
    return asked


class Log(TypedDict, total=False):
    log: Annotated[list[Any], operator.add]
    """What each node saw and did, in order."""


def two_questions(config: dict[str, bool] | None = None) -> Any:
    """Two interrupts in turn: an Agent Inbox request to run a command, then a plain question.

    `runs` counts how often each node started: a node runs again from its start on resume.
    """
    def act(state: Log) -> Log:
        response = interrupt(request("run_command", {"command": "make deploy", "env": "prod"},
                                     "Deploy to **prod**?", **(config or ALL)))
        return {"log": [["act", response]]}

    def ask(state: Log) -> Log:
        return {"log": [["ask", interrupt("Which colour for the banner?")]]}

    def done(state: Log) -> Log:
        return {"log": [["done", None]]}

    graph = StateGraph(Log)
    graph.add_node("act", act)
    graph.add_node("ask", ask)
    graph.add_node("done", done)
    graph.add_edge(START, "act")
    graph.add_edge("act", "ask")
    graph.add_edge("ask", "done")
    graph.add_edge("done", END)
    return graph.compile(checkpointer=InMemorySaver(), name="two-questions")


def one_request(**config: bool) -> Any:
    """One Agent Inbox request to write a file (as a list, Agent Inbox's own shape)."""
    def act(state: Log) -> Log:
        [response] = interrupt([request("write_file", {"path": "/srv/a.txt", "text": "hi"},
                                        **config)])
        return {"log": [["act", response]]}

    graph = StateGraph(Log)
    graph.add_node("act", act)
    graph.add_edge(START, "act")
    graph.add_edge("act", END)
    return graph.compile(checkpointer=InMemorySaver(), name="one-request")


def side_by_side() -> Any:
    """Two nodes in the same step, each interrupting: two interrupts pending at once.

    The right one is a subgraph: its interrupt surfaces in the parent's run too.
    """
    def node(name: str) -> Any:
        def run(state: Log) -> Log:
            return {"log": [[name, interrupt(f"{name}: go ahead?")]]}
        return run

    inner = StateGraph(Log)
    inner.add_node("right", node("right"))
    inner.add_edge(START, "right")
    graph = StateGraph(Log)
    graph.add_node("left", node("left"))
    graph.add_node("right", inner.compile())
    for name in ("left", "right"):
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    return graph.compile(checkpointer=InMemorySaver(), name="side-by-side")


class Busy:
    """An async graph whose node works until it is cancelled, saying when it starts and ends."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.after_ran = False

        async def work(state: Log) -> Log:
            self.started.set()
            try:
                await asyncio.Event().wait()  # nothing sets it: only a cancel ends it
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return {"log": [["work", None]]}

        def after(state: Log) -> Log:
            self.after_ran = True
            return {"log": [["after", None]]}

        self.graph = work_then_after(work, after, "busy")


class SyncBusy:
    """A sync graph whose node blocks until released; the node after it records that it ran."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.after_ran = False

        def work(state: Log) -> Log:
            self.started.set()
            self.release.wait(30)
            return {"log": [["work", None]]}

        def after(state: Log) -> Log:
            self.after_ran = True
            return {"log": [["after", None]]}

        self.graph = work_then_after(work, after, "sync-busy")


def work_then_after(work: Any, after: Any, name: str) -> Any:
    """A graph of two nodes in a row, "work" then "after"."""
    graph = StateGraph(Log)
    graph.add_node("work", work)
    graph.add_node("after", after)
    graph.add_edge(START, "work")
    graph.add_edge("work", "after")
    graph.add_edge("after", END)
    return graph.compile(checkpointer=InMemorySaver(), name=name)


def failing() -> Any:
    """A node that raises."""
    def boom(state: Log) -> Log:
        raise RuntimeError("the disk is full")

    graph = StateGraph(Log)
    graph.add_node("boom", boom)
    graph.add_edge(START, "boom")
    return graph.compile(checkpointer=InMemorySaver(), name="failing")


def model_calls() -> Any:
    """Two nodes that return model messages with token usage, as a chat model's would."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import MessagesState

    def call(n: int) -> Any:
        def run(state: MessagesState) -> dict[str, Any]:
            usage = {"input_tokens": 100 * n, "output_tokens": 10 * n, "total_tokens": 110 * n}
            return {"messages": [AIMessage(content=f"answer {n}", usage_metadata=usage)]}
        return run

    graph = StateGraph(MessagesState)
    graph.add_node("first", call(1))
    graph.add_node("second", call(2))
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    return graph.compile(checkpointer=InMemorySaver(), name="model-calls")
