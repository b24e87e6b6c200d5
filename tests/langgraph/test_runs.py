"""Real graphs run through the adapter against a real daemon, answered in taskdeck."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from core.adapters.langgraph import BadInterrupt, RunAborted, arun_graph, run_graph
from core.errors import PromptTimedOut
from core.model import EndReason, PromptState, TaskStatus
from tests.cli.conftest import Deck
from tests.langgraph.conftest import Person
from tests.langgraph.graphs import (
    Busy,
    SyncBusy,
    failing,
    model_calls,
    one_request,
    side_by_side,
    two_questions,
)
from tests.support import until


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def start(graph: Any, deck: Deck, name: str, input: Any = None, **options: Any) -> asyncio.Task:
    return asyncio.ensure_future(arun_graph(graph, input if input is not None else {"log": []},
                                            thread(name), runtime_dir=deck.runtime_dir,
                                            **options))


async def test_two_interrupts_are_asked_in_turn_and_the_run_finishes(
        deck: Deck, person: Person) -> None:
    run = start(two_questions(), deck, "t-two")
    first = await person.answer("approve")
    assert first.choices == ["approve", "edit", "deny"]
    assert first.question == "Deploy to **prod**?"
    assert first.action is not None
    assert (first.action.agent, first.action.tool) == ("langgraph", "run_command")
    assert first.action.input == {"command": "make deploy", "env": "prod"}
    assert first.action.session == "t-two"
    second = await person.answer("teal")
    assert second.question == "Which colour for the banner?"
    assert second.action is None and second.task_id == first.task_id

    output = await asyncio.wait_for(run, 15)
    assert output["log"] == [["act", {"type": "accept", "args": None}], ["ask", "teal"],
                             ["done", None]]
    task, prompts = await person.client.get(first.task_id)
    assert task.status is TaskStatus.FINISHED and task.agent == "langgraph"
    assert task.key == "langgraph:t-two"
    assert json.loads(task.result or "")["log"][-1] == ["done", None]
    assert [p.answer for p in prompts] == ["approve", "teal"]


@pytest.mark.parametrize(("answer", "reason", "response"), [
    ("approve", None, {"type": "accept", "args": None}),
    ("edit", '{"command": "make deploy-canary", "env": "prod"}',
     {"type": "edit", "args": {"action": "run_command",
                               "args": {"command": "make deploy-canary", "env": "prod"}}}),
    ("not on a Friday", None, {"type": "response", "args": "not on a Friday"}),
    ("deny", "the freeze is on", {"type": "ignore", "args": "the freeze is on"}),
    ("deny", None, {"type": "ignore", "args": None}),
], ids=["accept", "edit", "respond", "ignore-with-reason", "ignore"])
async def test_each_answer_resumes_the_graph_as_agent_inbox_reads_it(
        deck: Deck, person: Person, answer: str, reason: str | None,
        response: dict[str, Any]) -> None:
    run = start(two_questions(), deck, "t-each")
    await person.answer(answer, reason)
    await person.answer("teal")
    output = await asyncio.wait_for(run, 15)
    assert output["log"][0] == ["act", response]


async def test_only_the_answers_the_request_allows_are_offered_and_taken(
        deck: Deck, person: Person) -> None:
    run = start(one_request(allow_accept=True, allow_edit=True), deck, "t-allow")
    first = await person.answer("ship it now")  # a reply, which this request does not take
    assert first.choices == ["approve", "edit"]
    again = await person.question()
    assert again.question == ("Not taken: a written reply is not taken here; pick approve / "
                              "edit.\nThe graph asks to run write_file.\n"
                              "(a written reply is not taken here)")
    assert again.choices == first.choices and again.action == first.action
    await person.client.answer(again.id, "edit", reason='["not", "an object"]')
    third = await person.question()
    assert third.question.startswith("Not taken: the edited args must be a JSON object")
    await person.client.answer(third.id, "edit", reason='{"path": "/srv/b.txt", "text": "hi"}')
    output = await asyncio.wait_for(run, 15)
    # Agent Inbox's list shape comes back as a list of one response.
    assert output["log"] == [["act", {"type": "edit", "args": {
        "action": "write_file", "args": {"path": "/srv/b.txt", "text": "hi"}}}]]
    _, prompts = await person.client.get(first.task_id)
    assert [p.answer for p in prompts] == ["ship it now", "edit", "edit"]


async def test_a_request_that_takes_only_a_reply_asks_for_the_text(
        deck: Deck, person: Person) -> None:
    run = start(one_request(allow_respond=True), deck, "t-reply")
    first = await person.answer("reply")  # the one choice it lists: a pick, not the text
    assert first.choices == ["reply"]
    again = await person.question()
    assert again.question.startswith("Not taken: this question takes a written reply")
    await person.client.answer(again.id, "use /srv/c.txt instead")
    output = await asyncio.wait_for(run, 15)
    assert output["log"] == [["act", {"type": "response", "args": "use /srv/c.txt instead"}]]


async def test_several_pending_interrupts_are_each_asked_and_resumed_by_id(
        deck: Deck, person: Person) -> None:
    run = start(side_by_side(), deck, "t-side")
    first = await person.question()
    assert not run.done()
    await person.client.answer(first.id, f"yes to {first.question.split(':')[0]}")
    second = await person.question()
    assert {first.question, second.question} == {"left: go ahead?", "right: go ahead?"}
    await person.client.answer(second.id, f"yes to {second.question.split(':')[0]}")
    output = await asyncio.wait_for(run, 15)
    assert sorted(output["log"]) == [["left", "yes to left"], ["right", "yes to right"]]


async def test_abort_while_asking_stops_the_run_without_resuming(
        deck: Deck, person: Person) -> None:
    graph = two_questions()
    run = start(graph, deck, "t-abort")
    prompt = await person.question()
    assert await person.client.abort(prompt.task_id) == [prompt.task_id]
    with pytest.raises(RunAborted, match="aborted in taskdeck"):
        await asyncio.wait_for(run, 15)
    task, prompts = await person.client.get(prompt.task_id)
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.ABORTED
    assert [p.state for p in prompts] == [PromptState.CANCELLED]
    state = await graph.aget_state(thread("t-abort"))
    assert state.next == ("act",) and len(state.interrupts) == 1  # still at the question
    assert "log" not in state.values or state.values["log"] == []


async def test_abort_while_a_node_runs_cancels_an_async_graph(
        deck: Deck, person: Person) -> None:
    busy = Busy()
    run = start(busy.graph, deck, "t-busy")
    await asyncio.wait_for(busy.started.wait(), 15)
    [task] = await person.client.list_tasks(key="langgraph:t-busy")
    await person.client.abort(task.id)
    with pytest.raises(RunAborted):
        await asyncio.wait_for(run, 15)
    assert busy.cancelled.is_set() and not busy.after_ran


async def test_abort_stops_a_sync_graph_once_its_running_node_ends(
        deck: Deck, person: Person) -> None:
    busy = SyncBusy()
    run = asyncio.ensure_future(asyncio.to_thread(
        run_graph, busy.graph, {"log": []}, thread("t-sync-busy"), runtime_dir=deck.runtime_dir))
    await asyncio.to_thread(busy.started.wait, 15)
    [task] = await person.client.list_tasks(key="langgraph:t-sync-busy")
    await person.client.abort(task.id)
    await until(lambda: person.client.mirror.tasks[task.id].status.is_ended,
                what="the abort to land")
    assert not run.done()  # the node still runs: a thread cannot be cancelled
    busy.release.set()
    with pytest.raises(RunAborted):
        await asyncio.wait_for(run, 15)
    assert not busy.after_ran  # no node started after the abort


async def test_a_run_cancelled_in_its_process_fails_its_task_at_once(
        deck: Deck, person: Person) -> None:
    run = start(two_questions(), deck, "t-cancel")
    prompt = await person.question()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    task, [closed] = await person.client.get(prompt.task_id)
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.ERROR
    assert task.error == "the run was cancelled in its own process"
    assert closed.state is PromptState.CANCELLED


async def test_an_unanswered_question_leaves_the_graph_waiting_to_be_asked_again(
        deck: Deck, person: Person) -> None:
    graph = one_request(allow_accept=True)
    with pytest.raises(PromptTimedOut):
        await arun_graph(graph, {"log": []}, thread("t-late"), runtime_dir=deck.runtime_dir,
                         question_timeout=0.3)
    [task] = await person.client.list_tasks(key="langgraph:t-late")
    assert task.status is TaskStatus.FAILED and "nobody answered" in (task.error or "")
    _, [late] = await person.client.get(task.id)
    assert late.state is PromptState.TIMED_OUT
    person.seen.add(late.id)  # the mirror may still list it as pending for a moment
    # Run again with input None: the thread's pending interrupt is asked again.
    run = asyncio.ensure_future(arun_graph(graph, None, thread("t-late"),
                                           runtime_dir=deck.runtime_dir))
    again = await person.answer("approve")
    assert again.task_id != task.id and again.question == late.question
    output = await asyncio.wait_for(run, 15)
    assert output["log"] == [["act", {"type": "accept", "args": None}]]


async def test_a_sync_graph_runs_with_run_graph(deck: Deck, person: Person) -> None:
    run = asyncio.ensure_future(asyncio.to_thread(
        run_graph, two_questions(), {"log": []}, thread("t-sync"),
        runtime_dir=deck.runtime_dir))
    await person.answer("deny", "not today")
    await person.answer("red")
    output = await asyncio.wait_for(run, 15)
    assert output["log"][:2] == [["act", {"type": "ignore", "args": "not today"}],
                                 ["ask", "red"]]


async def test_a_node_that_raises_or_a_request_that_allows_nothing_fails_the_task(
        deck: Deck, person: Person) -> None:
    with pytest.raises(RuntimeError, match="the disk is full"):
        await arun_graph(failing(), {"log": []}, thread("t-boom"), runtime_dir=deck.runtime_dir)
    [task] = await person.client.list_tasks(key="langgraph:t-boom")
    assert task.status is TaskStatus.FAILED and task.error == "RuntimeError: the disk is full"

    with pytest.raises(BadInterrupt, match="allows no answer"):
        await arun_graph(one_request(allow_accept=False), {"log": []}, thread("t-none"),
                         runtime_dir=deck.runtime_dir)
    [task] = await person.client.list_tasks(key="langgraph:t-none")
    assert task.status is TaskStatus.FAILED and "allows no answer" in (task.error or "")
    _, prompts = await person.client.get(task.id)
    assert prompts == []  # nothing was asked that nobody could answer


async def test_the_tokens_of_model_messages_nodes_return_are_counted(
        deck: Deck, person: Person) -> None:
    await arun_graph(model_calls(), {"messages": []}, thread("t-tokens"),
                     runtime_dir=deck.runtime_dir)
    [task] = await person.client.list_tasks(key="langgraph:t-tokens")
    assert (task.prompt_tokens, task.completion_tokens) == (300, 30)


async def test_run_graph_inside_an_event_loop_says_to_await_arun_graph(deck: Deck) -> None:
    with pytest.raises(RuntimeError, match="await arun_graph"):
        run_graph(two_questions(), {"log": []}, thread("t-loop"), runtime_dir=deck.runtime_dir)
    assert deck.tasks() == []


def test_a_graph_without_a_thread_or_checkpointer_is_refused_before_anything_opens(
        deck: Deck) -> None:
    with pytest.raises(ValueError, match="thread_id"):
        run_graph(two_questions(), {"log": []}, {}, runtime_dir=deck.runtime_dir)
    graph = two_questions()
    graph.checkpointer = None
    with pytest.raises(ValueError, match="checkpointer"):
        run_graph(graph, {"log": []}, thread("t-none"), runtime_dir=deck.runtime_dir)
    assert deck.tasks() == []
