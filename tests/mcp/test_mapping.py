"""The tools as data: answers, non-answers and Claude Code decisions as tables (no I/O)."""

from __future__ import annotations

import json

import pytest

from core.mcp import tools
from core.model import Action, Prompt, PromptState

INPUT = {"command": "make deploy"}


def prompt(answer: str, *, reason: str | None = None, choices: list[str] | None = None) -> Prompt:
    return Prompt(id=7, task_id=3, question="q?", choices=choices or ["approve", "deny"],
                  state=PromptState.ANSWERED, answer=answer, reason=reason, answered_by="ana")


@pytest.mark.parametrize(("answer", "reason", "decision"), [
    ("approve", None, {"behavior": "allow", "updatedInput": INPUT}),
    ("deny", "frozen", {"behavior": "deny", "message": "frozen"}),
    ("deny", None, {"behavior": "deny", "message": "denied in taskdeck by ana"}),
    ("approve it, but on staging", None,
     {"behavior": "deny", "message": "approve it, but on staging"}),
    ("yes", None, {"behavior": "deny", "message": "yes"}),  # free text is never a yes
])
def test_only_a_listed_yes_allows_a_tool_call(answer: str, reason: str | None,
                                              decision: dict) -> None:
    assert tools.permission(prompt(answer, reason=reason), INPUT) == decision


@pytest.mark.parametrize(("answer", "choices", "status", "approved"), [
    ("approve", None, "approved", True),
    ("deny", None, "denied", False),
    ("no", ["yes", "no"], "denied", False),
    ("go ahead", None, "replied", False),
])
def test_request_approval_is_approved_only_by_a_listed_yes(
    answer: str, choices: list[str] | None, status: str, approved: bool
) -> None:
    out = tools.answered(prompt(answer, choices=choices), approval=True)
    assert (out["status"], out["approved"], out["answer"], out["answered_by"]) == (
        status, approved, answer, "ana")
    json.dumps(out)


def test_ask_human_says_answered_and_the_verdict_beside_it() -> None:
    out = tools.answered(prompt("green", choices=["red", "green", "blue"]), approval=False)
    assert (out["status"], out["verdict"], out["answer"]) == ("answered", "approved", "green")
    assert "approved" not in out


@pytest.mark.parametrize("status", [tools.Unanswered.TIMED_OUT, tools.Unanswered.ABORTED,
                                    tools.Unanswered.CANCELLED, tools.Unanswered.UNAVAILABLE])
def test_no_answer_is_never_an_approval(status: str) -> None:
    out = tools.unanswered(status, "why", approval=True)
    assert (out["status"], out["approved"], out["detail"]) == (status, False, "why")
    assert out["message"]


def test_schemas_are_inline_objects() -> None:
    for spec in tools.TOOLS.values():
        schema = spec.input_schema
        assert schema["type"] == "object"
        assert "$ref" not in json.dumps(schema)
        assert spec.description
    assert tools.TOOLS["permission_prompt"].input_schema["required"] == ["tool_name"]


def test_claude_codes_arguments_are_read_leniently() -> None:
    args = tools.parse("permission_prompt", {"tool_name": "Bash", "input": INPUT,
                                             "tool_use_id": "toolu_1", "added_later": 1})
    assert isinstance(args, tools.PermissionPrompt)
    assert (args.tool_name, args.input) == ("Bash", INPUT)


@pytest.mark.parametrize(("tool", "given", "line"), [
    ("deploy", {"env": "prod"}, 'deploy: {"env": "prod"}'),
    ("deploy", {}, "deploy: deploy(...)"),
    ("shell", {"command": "make deploy"}, "shell: make deploy"),
    ("fetch", {"url": "https://example.org"}, "fetch: https://example.org"),
])
def test_an_action_reads_as_its_summary_or_its_details(tool: str, given: dict, line: str) -> None:
    assert tools.what(Action(agent="mcp", tool=tool, input=given)) == line
