"""The pure half of the adapter: interrupt values to questions, answers to resume values."""

from __future__ import annotations

from typing import Any

import pytest

from core.adapters.langgraph import (
    REPLY,
    BadInterrupt,
    NotTaken,
    asked_again,
    interruption,
    read_answer,
    result_of,
    usage_of,
)
from core.model import EDIT, MAX_SUMMARY, Prompt, Verdict
from tests.langgraph.graphs import request


def answered(asking: Any, answer: str, reason: str | None = None) -> Prompt:
    question = asking.question
    return Prompt(id=1, task_id=1, question=question.text, choices=question.choices or [],
                  answer=answer, reason=reason)


@pytest.mark.parametrize(("config", "choices"), [
    ({"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True},
     ["approve", "edit", "deny"]),
    ({"allow_accept": True, "allow_ignore": True}, ["approve", "deny"]),
    ({"allow_accept": True, "allow_edit": True}, ["approve", "edit"]),
    ({"allow_edit": True, "allow_respond": True}, ["edit"]),
    ({"allow_respond": True}, [REPLY]),
])
def test_the_choices_are_only_the_answers_the_config_allows(
        config: dict[str, bool], choices: list[str]) -> None:
    [asking] = interruption("i1", request("send_email", {"to": "a@b.c"}, **config)).asks
    assert asking.question.choices == choices
    assert asking.request is not None and asking.request.respond is config.get("allow_respond",
                                                                              False)


def test_edit_as_the_second_of_two_choices_approves_and_never_denies() -> None:
    [asking] = interruption("i1", request("x", {}, allow_accept=True, allow_edit=True)).asks
    assert answered(asking, EDIT, '{"a": 1}').verdict is Verdict.APPROVED
    assert answered(asking, "approve").verdict is Verdict.APPROVED


def test_a_request_carries_its_action_and_a_line_for_the_tree() -> None:
    [asking] = interruption("i1", request("send_email", {"to": "a@b.c", "body": "hi"},
                                          "Send the **weekly** mail?"), session="thread-9").asks
    action = asking.question.action
    assert action is not None
    assert (action.agent, action.tool, action.session) == ("langgraph", "send_email", "thread-9")
    assert action.input == {"to": "a@b.c", "body": "hi"}
    assert action.summary == 'send_email {"to": "a@b.c", "body": "hi"}'
    assert asking.question.text.splitlines()[0] == "Send the **weekly** mail?"
    [shell] = interruption("i2", request("bash", {"command": "rm -rf build"})).asks
    assert shell.question.action is not None
    assert shell.question.action.summary == "rm -rf build"
    assert shell.question.text == "The graph asks to run bash."
    [long] = interruption("i3", request("t", {"text": "x" * 500})).asks
    assert long.question.action is not None
    assert len(long.question.action.summary) == MAX_SUMMARY


def test_args_that_are_no_json_are_shown_by_their_repr() -> None:
    [asking] = interruption("i1", request("t", {"when": object, "n": 3})).asks
    assert asking.question.action is not None
    assert asking.question.action.input == {"when": repr(object), "n": 3}


@pytest.mark.parametrize(("answer", "reason", "resumed"), [
    ("approve", None, {"type": "accept", "args": None}),
    ("edit", None, {"type": "edit", "args": {"action": "t", "args": {"n": 1}}}),
    ("edit", "  ", {"type": "edit", "args": {"action": "t", "args": {"n": 1}}}),
    ("edit", '{"n": 2, "m": [1]}', {"type": "edit", "args": {"action": "t",
                                                            "args": {"n": 2, "m": [1]}}}),
    ("deny", None, {"type": "ignore", "args": None}),
    ("deny", "too late", {"type": "ignore", "args": "too late"}),
    ("use n=5", None, {"type": "response", "args": "use n=5"}),
])
def test_each_answer_reads_as_the_response_agent_inbox_defines(
        answer: str, reason: str | None, resumed: dict[str, Any]) -> None:
    [asking] = interruption("i1", request("t", {"n": 1})).asks
    assert read_answer(asking, answered(asking, answer, reason)) == resumed


@pytest.mark.parametrize(("config", "answer", "reason", "why"), [
    ({"allow_accept": True}, "go on", None, "a written reply is not taken here; pick approve"),
    ({"allow_edit": True}, "edit", "{not json", "the edited args are not JSON"),
    ({"allow_edit": True}, "edit", "[1, 2]", "the edited args must be a JSON object"),
    ({"allow_respond": True}, REPLY, None, "this question takes a written reply"),
])
def test_an_answer_the_request_does_not_allow_is_not_taken(
        config: dict[str, bool], answer: str, reason: str | None, why: str) -> None:
    [asking] = interruption("i1", request("t", {"n": 1}, **config)).asks
    with pytest.raises(NotTaken, match=why) as raised:
        read_answer(asking, answered(asking, answer, reason))
    again = asked_again(asking, str(raised.value))
    assert again.text == f"Not taken: {raised.value}.\n{asking.question.text}"
    assert again.choices == asking.question.choices and again.action == asking.question.action


def test_a_request_that_allows_nothing_is_refused() -> None:
    with pytest.raises(BadInterrupt, match="allows no answer"):
        interruption("i1", request("t", {}, allow_accept=False))
    with pytest.raises(BadInterrupt):
        interruption("i1", {"action_request": {"action": "t", "args": {}}})  # no config


def test_a_list_of_requests_is_asked_in_turn_and_resumed_as_a_list() -> None:
    asked = interruption("i1", [request("a", {}), request("b", {}, allow_ignore=True)])
    assert [a.request.action for a in asked.asks if a.request] == ["a", "b"]
    assert asked.shape == "list" and asked.resume_value(["x", "y"]) == ["x", "y"]
    single = interruption("i1", request("a", {}))
    assert single.shape == "one" and single.resume_value(["x"]) == "x"


@pytest.mark.parametrize(("value", "text", "choices"), [
    ("Which colour?", "Which colour?", None),
    ({"question": "Ship it?", "choices": ["yes", "no"]}, "Ship it?", ["yes", "no"]),
    ({"question": "Ship it?", "choices": "yes"}, "Ship it?", None),
    ({"draft": "v1", "n": 2}, '{\n  "draft": "v1",\n  "n": 2\n}', None),
    (["not", "requests"], '[\n  "not",\n  "requests"\n]', None),
    ("", "(the graph interrupted with an empty value)", None),
    ({"action_request": {"action": "t", "args": "oops"}}, None, None),
])
def test_other_values_are_plain_questions_answered_as_is(
        value: Any, text: str | None, choices: list[str] | None) -> None:
    [asking] = interruption("i1", value).asks
    assert asking.request is None and asking.question.action is None
    if text is not None:
        assert asking.question.text == text
    assert asking.question.choices == choices
    assert read_answer(asking, answered(asking, "whatever she said")) == "whatever she said"


def test_a_long_description_is_cut_to_what_a_question_holds_keeping_the_last_line() -> None:
    [asking] = interruption("i1", request("t", {}, "d" * 10_000, allow_accept=True),
                            timeout=30.0).asks
    text = asking.question.text
    assert len(text) == 4096 and text.endswith("d…\n(a written reply is not taken here)")
    assert asking.question.timeout == 30.0
    [everything] = interruption("i1", request("t", {}, "Go?")).asks
    assert everything.question.text == "Go?"  # the keys already offer every answer
    [reply] = interruption("i1", request("t", {}, "Why?", allow_respond=True)).asks
    assert reply.question.text == "Why?\n(answer with a written reply: r)"


def test_usage_is_read_from_the_messages_a_node_returns() -> None:
    class Message:
        def __init__(self, usage: Any) -> None:
            self.usage_metadata = usage

    update = {"messages": [Message({"input_tokens": 7, "output_tokens": 2}),
                           Message(None), "plain text"],
              "last": Message({"input_tokens": 1, "output_tokens": -5}), "n": 3}
    assert usage_of(update) == (8, 2)  # a negative count is no count
    assert usage_of(None) == (0, 0) and usage_of(["not", "a", "dict"]) == (0, 0)


def hitl(allowed: list[str], key: str = "args") -> dict[str, Any]:
    """A LangChain `HITLRequest` for two calls of one tool."""
    return {"action_requests": [{"name": "write_file", key: {"path": "/a"}, "description": "A?"},
                                {"name": "write_file", key: {"path": "/b"}}],
            "review_configs": [{"action_name": "write_file", "allowed_decisions": allowed}]}


def test_a_langchain_request_asks_each_action_and_resumes_with_decisions() -> None:
    asked = interruption("i1", hitl(["approve", "edit", "reject"]))
    assert [a.question.text for a in asked.asks] == ["A?", "The graph asks to run write_file."]
    assert all(a.question.choices == ["approve", "edit", "deny"] for a in asked.asks)
    first, second = asked.asks
    decisions = [read_answer(first, answered(first, "edit", '{"path": "/c"}')),
                 read_answer(second, answered(second, "deny", "no"))]
    assert asked.resume_value(decisions) == {"decisions": [
        {"type": "edit", "edited_action": {"name": "write_file", "args": {"path": "/c"}}},
        {"type": "reject", "message": "no"}]}
    assert read_answer(first, answered(first, "approve")) == {"type": "approve"}
    assert read_answer(first, answered(first, "deny")) == {"type": "reject"}
    assert read_answer(first, answered(first, "later")) == {"type": "reject", "message": "later"}


def test_a_langchain_reply_is_respond_where_allowed_and_older_requests_say_arguments() -> None:
    [only, _] = interruption("i1", hitl(["respond"])).asks
    assert only.question.choices == [REPLY]
    assert read_answer(only, answered(only, "it says hi")) == {"type": "respond",
                                                              "message": "it says hi"}
    [old, _] = interruption("i1", hitl(["edit"], key="arguments")).asks
    assert read_answer(old, answered(old, "edit", '{"path": "/d"}')) == {
        "type": "edit", "edited_action": {"name": "write_file", "arguments": {"path": "/d"}}}
    with pytest.raises(NotTaken, match="a written reply is not taken here; pick edit"):
        read_answer(old, answered(old, "why?"))


def test_a_langchain_action_no_review_config_allows_is_refused() -> None:
    with pytest.raises(BadInterrupt, match="allows no decision taskdeck can give"):
        interruption("i1", hitl([]))
    unrelated = {**hitl(["approve"]), "review_configs": [{"action_name": "other",
                                                          "allowed_decisions": ["approve"]}]}
    with pytest.raises(BadInterrupt):
        interruption("i1", unrelated)


def test_a_per_call_tool_approval_takes_its_decisions_from_the_response_schema() -> None:
    value = {"type": "tool_approval", "tool_call_id": "c1", "name": "write_file",
             "args": {"path": "/a"}, "description": "Write /a?"}
    several = {"discriminator": {"propertyName": "type", "mapping": {
        "approve": "#/$defs/ApproveDecision", "reject": "#/$defs/RejectDecision"}}}
    asked = interruption("i1", value, schema=several)
    [asking] = asked.asks
    assert asking.question.choices == ["approve", "deny"] and asking.question.text == "Write /a?"
    assert asked.resume_value([read_answer(asking, answered(asking, "deny", "no"))]) == {
        "type": "reject", "message": "no"}
    one = {"properties": {"type": {"const": "edit"}, "edited_action": {}}}
    [edit] = interruption("i1", value, schema=one).asks
    assert edit.question.choices == ["edit"]
    with pytest.raises(BadInterrupt, match="allowed: none"):
        interruption("i1", value, schema=None)


def test_the_result_is_the_last_message_of_a_chat_state_else_the_output_as_json() -> None:
    class Message:
        def __init__(self, content: Any) -> None:
            self.content = content

    assert result_of({"messages": [Message("hi"), Message("  all done\n")]}) == "all done"
    assert result_of({"messages": [Message([{"type": "text"}])], "n": 1}).startswith(
        '{"messages": ["')
    assert result_of({"log": [["act", None]]}) == '{"log": [["act", null]]}'
    assert result_of(None) == "null"
    assert len(result_of({"text": "x" * 10_000})) == 4096
