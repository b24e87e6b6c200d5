"""`taskdeck hook codex` as real subprocesses against a real daemon."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.bridges.conftest import HookDeck

SESSION = "019a-codex"
ROOT = f"codex:{SESSION}"


def event(name: str, **fields: object) -> dict:
    return {"hook_event_name": name, "session_id": SESSION, "turn_id": "turn-1",
            "cwd": "/home/me/shop", "model": "gpt-x", "transcript_path": None,
            "permission_mode": "default", **fields}


ESCALATE = event("PermissionRequest", tool_name="Bash",
                 tool_input={"command": "touch /etc/x", "description": "needs a system file"})


def codex(deck: HookDeck, data: dict | bytes, *args: str) -> subprocess.CompletedProcess[str]:
    return deck.hook(data, *args, agent="codex")


def quiet(result: subprocess.CompletedProcess[str]) -> None:
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.timeout(60)
def test_a_codex_session_builds_its_tree(deck: HookDeck) -> None:
    quiet(codex(deck, event("SessionStart", source="startup")))
    [root] = deck.by_key(ROOT)
    assert (root["agent"], root["description"], root["status"]) == \
        ("codex", "/home/me/shop", "in_progress")
    assert root["progress"] == "started (gpt-x)"
    quiet(codex(deck, event("UserPromptSubmit", prompt="tidy the build")))
    [root] = deck.by_key(ROOT)  # the same root, now at the prompt
    assert (root["description"], root["progress"]) == ("/home/me/shop", "prompt: tidy the build")
    quiet(codex(deck, event("PostToolUse", tool_name="Bash", tool_input={"command": "ls"},
                            tool_response="a b", tool_use_id="c1")))
    assert deck.by_key(ROOT)[0]["progress"] == "Bash: ls"
    quiet(codex(deck, event("Stop", stop_hook_active=False, last_assistant_message="done")))
    quiet(codex(deck, event("SessionEnd", reason="other")))
    [root] = deck.by_key(ROOT)
    assert (root["status"], root["result"]) == ("finished", "other")


@pytest.mark.timeout(60)
def test_without_session_start_the_prompt_opens_the_root_and_session_end_finishes_it(
    deck: HookDeck,
) -> None:
    """A session resumed before taskdeck's hooks were written: its prompt comes first."""
    quiet(codex(deck, event("UserPromptSubmit", prompt="tidy the build")))
    [root] = deck.by_key(ROOT)
    assert (root["description"], root["status"], root["progress"]) == \
        ("/home/me/shop: tidy the build", "in_progress", "prompt: tidy the build")
    quiet(codex(deck, event("SessionEnd", reason="other")))
    [root] = deck.by_key(ROOT)
    assert (root["status"], root["result"]) == ("finished", "other")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("reply", "expected"),
    [("approve", {"behavior": "allow"}),
     ("deny", {"behavior": "deny", "message": "no system files"})],
)
def test_a_permission_request_shows_the_justification_and_prints_the_answer(
    deck: HookDeck, reply: str, expected: dict
) -> None:
    hook = deck.start_hook(ESCALATE, agent="codex")
    task = deck.asking(ROOT)
    asked = task["blocked_on"]
    assert asked["question"] == \
        "Codex asks to run Bash: touch /etc/x (because: needs a system file)"
    assert asked["summary"] == "touch /etc/x"
    extra = ["--reason", "no system files"] if reply == "deny" else []
    assert deck.run("answer", str(task["id"]), reply, *extra).returncode == 0
    out, err = hook.communicate(timeout=20)
    assert (hook.returncode, err) == (0, "")
    assert json.loads(out) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                                      "decision": expected}}


@pytest.mark.timeout(60)
def test_a_gated_pre_tool_use_approval_prints_nothing(deck: HookDeck) -> None:
    call = event("PreToolUse", tool_name="Bash", tool_input={"command": "make"}, tool_use_id="c2")
    hook = deck.start_hook(call, "--gate", "Bash", agent="codex")
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "approve").returncode == 0
    out, err = hook.communicate(timeout=20)
    assert (hook.returncode, out, err) == (0, "", "")  # Codex refuses an explicit allow
    hook = deck.start_hook(call, "--gate", "Bash", agent="codex")
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "deny").returncode == 0
    out, _ = hook.communicate(timeout=20)
    answer = json.loads(out)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert answer["permissionDecisionReason"].startswith("denied in taskdeck by ")


@pytest.mark.timeout(60)
def test_abort_denies_the_question_and_stops_the_next_event(deck: HookDeck) -> None:
    hook = deck.start_hook(ESCALATE, agent="codex")
    task = deck.asking(ROOT)
    assert deck.run("abort", str(task["id"])).returncode == 0
    out, err = hook.communicate(timeout=20)
    assert err == ""
    answer = json.loads(out)
    # Codex fails closed on continue/interrupt in a PermissionRequest: a plain deny.
    assert set(answer) == {"hookSpecificOutput"}
    decision = answer["hookSpecificOutput"]["decision"]
    assert decision["behavior"] == "deny"
    assert decision["message"].startswith("aborted in taskdeck by ")
    later = json.loads(codex(deck, event("PostToolUse", tool_name="Bash",
                                         tool_input={"command": "ls"})).stdout)
    assert later == {"continue": False, "stopReason": decision["message"]}


HOSTILE = [
    b"not json",
    b'{"hook_event_name": "PermissionRequest", "session_id": "s", "tool_name": 5}',
    b'{"hook_event_name": "PostToolBatch", "session_id": "s"}',
    b'{"hook_event_name": "PreToolUse", "session_id": "' + b"x" * (10 << 20) + b'"}',
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_stdin_gets_a_safe_answer(deck: HookDeck, raw: bytes) -> None:
    result = codex(deck, raw, "--gate", "Bash")
    assert result.returncode == 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("taskdeck hook codex: ") and "Traceback" not in line
    if b"PreToolUse" in raw or not raw.startswith(b"{"):  # may be a gated call: denied
        assert json.loads(result.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    else:  # a PermissionRequest goes to Codex's own approval flow; the rest is observed
        assert result.stdout == ""
    assert "allow" not in result.stdout
    assert deck.tasks() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("args", [["--timeout", "0"], ["--idle", "soon"], ["--what"]])
def test_a_usage_mistake_is_one_line(deck: HookDeck, args: list[str]) -> None:
    result = codex(deck, event("Stop"), *args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("taskdeck hook: ") and line.endswith("(see taskdeck hook --help)")
