"""The pure half of `taskdeck hook codex`: where Codex's dialect differs from Claude Code's."""

from __future__ import annotations

import json

import pytest

from core.bridges.codex import CODEX
from core.bridges.hook import BadInput, Plan, decided, fail_safe, parse, plan, question, stopped
from core.model import Action, Prompt


def hook(name: str, **fields: object):
    return parse(json.dumps({"hook_event_name": name, "session_id": "T", "cwd": "/w",
                             "turn_id": "turn-1", "model": "gpt-x", "transcript_path": None,
                             "permission_mode": "default", **fields}).encode(), CODEX)


BASH = {"tool_name": "Bash", "tool_input": {"command": "rm -rf build"}}
WHY = {"tool_name": "Bash", "tool_input": {"command": "rm -rf build",
                                           "description": "the build dir is stale"}}


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        # No prompt event is promised: SessionStart opens the root.
        ("SessionStart", {"source": "startup"}, Plan("/w", progress="started (gpt-x)")),
        ("UserPromptSubmit", {"prompt": "tidy up"}, Plan("/w: tidy up", progress="prompt: tidy up")),
        ("PostToolUse", {**BASH, "tool_response": "ok", "tool_use_id": "c1"},
         Plan("/w", progress="Bash: rm -rf build")),
        ("PreToolUse", BASH, Plan("/w")),
        ("PreCompact", {"trigger": "auto"}, Plan("/w")),
        ("PostCompact", {"trigger": "auto"}, Plan("/w")),
        ("Stop", {"stop_hook_active": False, "last_assistant_message": "done"},
         Plan("/w", progress="turn ended: waiting for the next prompt")),
        ("SessionEnd", {"reason": "other"}, Plan("/w", finish="other", only_if_live=True)),
    ],
)
def test_observed_events_plan_the_tree(name: str, fields: dict, expected: Plan) -> None:
    assert plan(hook(name, **fields), CODEX) == expected


def test_keys_name_the_codex_session() -> None:
    assert hook("Stop").root_key(CODEX) == "codex:T"


def test_a_permission_request_asks_with_the_models_justification() -> None:
    done = plan(hook("PermissionRequest", **WHY), CODEX)
    assert done.ask == Action(agent="codex", tool="Bash", input=WHY["tool_input"], cwd="/w",
                              session="T")
    assert question(done.ask, CODEX) == \
        "Codex asks to run Bash: rm -rf build (because: the build dir is stale)"
    plain = plan(hook("PermissionRequest", **BASH), CODEX).ask
    assert question(plain, CODEX) == "Codex asks to run Bash: rm -rf build"


@pytest.mark.parametrize(
    "raw",
    [b'{"hook_event_name": "PostToolBatch", "session_id": "T"}',  # Claude Code's only
     b'{"hook_event_name": "Notification", "session_id": "T"}',
     b'{"hook_event_name": "PermissionRequest", "session_id": "T", "tool_input": {}}'],
)
def test_events_codex_does_not_send_are_refused(raw: bytes) -> None:
    with pytest.raises(BadInput):
        parse(raw, CODEX)


def answered(answer: str, reason: str | None = None) -> Prompt:
    return Prompt(id=1, task_id=1, question="q", answer=answer, reason=reason, answered_by="ann")


PRE = "PreToolUse"
PERM = "PermissionRequest"


def perm(**decision: object) -> dict:
    return {"hookSpecificOutput": {"hookEventName": PERM, "decision": decision}}


def pre_deny(reason: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": PRE, "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}


@pytest.mark.parametrize(
    ("event", "prompt", "expected"),
    [
        (PRE, answered("approve"), None),  # Codex refuses a PreToolUse allow: say nothing
        (PERM, answered("approve"), perm(behavior="allow")),
        (PRE, answered("deny", "not here"), pre_deny("not here")),
        (PRE, answered("deny"), pre_deny("denied in taskdeck by ann")),
        (PERM, answered("deny", "not here"), perm(behavior="deny", message="not here")),
        (PERM, answered("use git clean"), perm(behavior="deny", message="use git clean")),
        (PRE, answered(""), pre_deny("denied in taskdeck")),  # never an empty reason
    ],
)
def test_answers_become_codex_output(event: str, prompt: Prompt, expected: dict | None) -> None:
    assert decided(event, prompt, CODEX) == expected


def test_an_aborted_session_denies_without_the_fields_codex_refuses() -> None:
    reason = "aborted in taskdeck by ann"
    assert stopped(PERM, reason, CODEX) == perm(behavior="deny", message=reason)
    assert stopped(PRE, reason, CODEX) == pre_deny(reason)
    assert stopped("PostToolUse", reason, CODEX) == {"continue": False, "stopReason": reason}


@pytest.mark.parametrize(
    ("event", "is_gated", "expected"),
    [(PERM, True, None), (PRE, True, pre_deny("taskdeck could not ask a person: down")),
     (PRE, False, None), ("Stop", False, None)],
)
def test_errors_never_allow(event: str, is_gated: bool, expected: dict | None) -> None:
    assert fail_safe(event, is_gated, "down", CODEX) == expected
