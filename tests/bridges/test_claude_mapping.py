"""The pure half of `taskdeck hook claude`: hook input -> plan, answer -> hook output."""

from __future__ import annotations

import json

import pytest

from core.bridges.claude import CLAUDE
from core.bridges.hook import (
    BadInput,
    Plan,
    decided,
    event_of,
    fail_safe,
    gated,
    parse,
    plan,
    settled,
    stop_reason,
    stopped,
)
from core.model import Action, Prompt, Task


def hook(name: str, **fields: object):
    return parse(json.dumps({"hook_event_name": name, "session_id": "S", "cwd": "/w",
                             **fields}).encode(), CLAUDE)


BASH = {"tool_name": "Bash", "tool_input": {"command": "npm test"}}
SUB = {"agent_id": "a1", "agent_type": "Explore"}


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("SessionStart", {"source": "startup"}, Plan("/w", only_if_live=True)),
        ("UserPromptSubmit", {"prompt": "fix it"}, Plan("/w: fix it", progress="prompt: fix it")),
        ("PostToolUse", BASH, Plan("/w", progress="Bash: npm test")),
        ("PostToolUse", {"tool_name": "Read", "tool_input": {"file_path": "a.py"}},
         Plan("/w", progress="Read: a.py")),
        ("PostToolUse", {"tool_name": "TodoWrite", "tool_input": {"todos": []}},
         Plan("/w", progress="TodoWrite")),
        ("PostToolUse", {**BASH, **SUB}, Plan("/w", "Explore a1", progress="Bash: npm test")),
        ("PostToolBatch", {"tool_calls": [{"tool_name": "Read"}, {**BASH}]},
         Plan("/w", progress="Bash: npm test")),
        ("PostToolBatch", {"tool_calls": ["junk"]}, Plan("/w")),
        ("PreToolUse", BASH, Plan("/w")),  # not gated: observed only
        ("Notification", {"message": "Claude needs your permission"},
         Plan("/w", progress="Claude needs your permission")),
        ("Stop", {}, Plan("/w", progress="turn ended: waiting for the next prompt")),
        ("SubagentStart", SUB, Plan("/w", "Explore a1", progress="started")),
        ("SubagentStop", {**SUB, "last_assistant_message": "found it"},
         Plan("/w", "Explore a1", finish="found it")),
        ("SessionEnd", {"reason": "other"}, Plan("/w", finish="other", only_if_live=True)),
    ],
)
def test_observed_events_plan_the_tree(name: str, fields: dict, expected: Plan) -> None:
    assert plan(hook(name, **fields), CLAUDE) == expected


def test_keys_name_the_session_and_the_sub_agent() -> None:
    assert hook("Stop").root_key(CLAUDE) == "claude:S"
    assert hook("Stop").child_key(CLAUDE) is None
    assert hook("Stop", **SUB).child_key(CLAUDE) == "claude:S/a1"


@pytest.mark.parametrize(
    ("name", "gates", "asks"),
    [
        ("PermissionRequest", (), True),
        ("PreToolUse", ("Bash",), True),
        ("PreToolUse", ("Edit",), False),
        ("PreToolUse", (), False),
        ("PostToolUse", ("Bash",), False),
    ],
)
def test_decisions_ask_with_a_structured_action(name: str, gates: tuple, asks: bool) -> None:
    done = plan(hook(name, **BASH), CLAUDE, gates)
    if not asks:
        assert done.ask is None
        return
    assert done.ask == Action(agent="claude", tool="Bash", input={"command": "npm test"},
                              cwd="/w", session="S")
    assert done.progress is None and done.finish is None


@pytest.mark.parametrize(
    "raw",
    [
        b"", b"nope", b"[]", b"null", b'{"hook_event_name": "Stop"}',
        b'{"hook_event_name": "Stop", "session_id": ""}',
        b'{"hook_event_name": "Stop", "session_id": 1}',
        b'{"hook_event_name": "Odd", "session_id": "S"}',
        b'{"hook_event_name": "PostToolUse", "session_id": "S", "tool_input": []}',
        b'{"hook_event_name": "PermissionRequest", "session_id": "S"}',
        b'{"hook_event_name": "Stop", "session_id": "' + b"s" * 200 + b'"}',
        b" " * (2 << 20),
    ],
)
def test_bad_input_is_refused(raw: bytes) -> None:
    with pytest.raises(BadInput):
        parse(raw, CLAUDE)


@pytest.mark.parametrize(
    ("raw", "event"),
    [(b'{"hook_event_name": "PreToolUse", "session_id": 1}', "PreToolUse"),
     (b"[1]", None), (b"{", None), (b'{"hook_event_name": 3}', None)],
)
def test_the_event_is_read_leniently_from_refused_input(raw: bytes, event: str | None) -> None:
    assert event_of(raw) == event


def test_gated() -> None:
    assert gated("PermissionRequest", None, ())
    assert gated("PreToolUse", "Bash", {"Bash"})
    assert not gated("PreToolUse", None, {"Bash"})
    assert not gated("Stop", "Bash", {"Bash"})


def answered(answer: str, reason: str | None = None, choices=("approve", "deny")) -> Prompt:
    return Prompt(id=1, task_id=1, question="q", choices=list(choices), answer=answer,
                  reason=reason, answered_by="ann")


PRE = "PreToolUse"
PERM = "PermissionRequest"


def pre(decision: str, reason: str | None = None) -> dict:
    out = {"hookEventName": PRE, "permissionDecision": decision}
    if reason:
        out["permissionDecisionReason"] = reason
    return {"hookSpecificOutput": out}


def perm(**decision: object) -> dict:
    return {"hookSpecificOutput": {"hookEventName": PERM, "decision": decision}}


@pytest.mark.parametrize(
    ("event", "prompt", "expected"),
    [
        (PRE, answered("approve"), pre("allow")),
        (PERM, answered("approve"), perm(behavior="allow")),
        (PRE, answered("deny", "not on main"), pre("deny", "not on main")),
        (PERM, answered("deny", "not on main"), perm(behavior="deny", message="not on main")),
        (PERM, answered("deny"), perm(behavior="deny", message="denied in taskdeck by ann")),
        (PRE, answered("use make"), pre("deny", "use make")),
        (PERM, answered("use make"), perm(behavior="deny", message="use make")),
        (PERM, answered("yes"), perm(behavior="deny", message="yes")),  # free text never allows
        (PERM, answered("no", choices=("yes", "no")), perm(behavior="deny",
                                                             message="denied in taskdeck by ann")),
    ],
)
def test_answers_become_hook_output(event: str, prompt: Prompt, expected: dict) -> None:
    assert decided(event, prompt, CLAUDE) == expected


def test_an_aborted_session_stops_every_hook() -> None:
    task = Task(id=1, agent="claude", description="d", error="aborted by ann")
    reason = stop_reason(task)
    assert reason == "aborted in taskdeck by ann"
    assert stopped("Stop", reason, CLAUDE) == {"continue": False, "stopReason": reason}
    assert stopped(PERM, reason, CLAUDE)["hookSpecificOutput"]["decision"] == {
        "behavior": "deny", "message": reason, "interrupt": True}
    assert stopped(PRE, reason, CLAUDE)["hookSpecificOutput"]["permissionDecision"] == "deny"


@pytest.mark.parametrize(
    ("event", "is_gated", "expected"),
    [
        (PERM, True, None),  # Claude Code's own dialog asks
        (PRE, True, pre("deny", "taskdeck could not ask a person: daemon down")),
        (PRE, False, None),
        ("Stop", False, None),
        (None, False, None),
    ],
)
def test_errors_never_allow(event: str | None, is_gated: bool, expected: dict | None) -> None:
    assert fail_safe(event, is_gated, "daemon down", CLAUDE) == expected


def pending(tool: str = "Bash", given: dict | None = None, agent: str = "claude") -> Prompt:
    action = Action(agent=agent, tool=tool, input=given or {"command": "npm test"})
    return Prompt(id=1, task_id=1, question="q", action=action)


@pytest.mark.parametrize(
    ("name", "fields", "prompt", "why"),
    [
        ("PostToolUse", BASH, pending(), "Bash ran"),
        ("PostToolUse", {"tool_name": "Bash", "tool_input": {"command": "ls"}}, pending(), None),
        ("PostToolUse", {"tool_name": "Read", "tool_input": {"command": "npm test"}},
         pending(), None),
        ("PostToolBatch", {"tool_calls": [{"tool_name": "Read"}, {**BASH}]}, pending(),
         "Bash was decided in its batch"),
        ("PostToolBatch", {"tool_calls": ["junk", {"tool_name": "Bash"}]}, pending(), None),
        ("Stop", {}, pending(), "its turn ended"),
        ("SubagentStop", SUB, pending(), "the sub-agent ended"),
        ("UserPromptSubmit", {"prompt": "next"}, pending(), "a new prompt was sent"),
        ("SessionEnd", {"reason": "other"}, pending(), "the session ended"),
        # A dialog still up: Notification fires ~6 s into it; another tool may finish.
        ("Notification", {"message": "Claude needs your permission"}, pending(), None),
        ("PostToolUse", {"tool_name": "Read", "tool_input": {"file_path": "a"}}, pending(), None),
        ("PreToolUse", BASH, pending(), None),
        # Not this bridge's question: a plain `taskdeck ask`, or another agent's.
        ("Stop", {}, Prompt(id=1, task_id=1, question="q"), None),
        ("Stop", {}, pending(agent="codex"), None),
    ],
)
def test_an_event_shows_the_agent_decided_a_pending_question(
    name: str, fields: dict, prompt: Prompt, why: str | None
) -> None:
    assert settled(hook(name, **fields), CLAUDE, prompt) == why
