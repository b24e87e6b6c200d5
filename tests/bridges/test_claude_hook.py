"""`taskdeck hook claude` as real subprocesses against a real daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.bridges.conftest import HookDeck

SESSION = "5e55-1a2b"
ROOT = f"claude:{SESSION}"
CHILD = f"{ROOT}/agent-7"


def event(name: str, **fields: object) -> dict:
    return {"hook_event_name": name, "session_id": SESSION, "cwd": "/home/me/shop",
            "transcript_path": "/tmp/t.jsonl", "permission_mode": "default", **fields}


BASH = {"tool_name": "Bash", "tool_input": {"command": "npm test"}}
PERMISSION = event("PermissionRequest", **BASH,
                   permission_suggestions=[{"type": "addRules", "behavior": "allow"}])


def quiet(result: subprocess.CompletedProcess[str]) -> None:
    """An observed event: exit 0, nothing on stdout, nothing on stderr."""
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def answer_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("taskdeck hook claude: ")
    return line


@pytest.mark.timeout(90)
def test_a_session_builds_its_tree(deck: HookDeck) -> None:
    quiet(deck.hook(event("SessionStart", source="startup")))
    quiet(deck.hook(event("UserPromptSubmit", prompt="fix the failing test")))
    quiet(deck.hook(event("PostToolUse", **BASH, tool_response={}, tool_use_id="t1")))
    [root] = deck.by_key(ROOT)
    assert root["agent"] == "claude"
    assert root["description"] == "/home/me/shop: fix the failing test"
    assert root["progress"] == "Bash: npm test"
    assert root["status"] == "in_progress"
    assert root["lease"] == 30 * 60

    quiet(deck.hook(event("SubagentStart", agent_id="agent-7", agent_type="Explore")))
    inside = event("PostToolUse", agent_id="agent-7", agent_type="Explore",
                   tool_name="Read", tool_input={"file_path": "src/cart.py"})
    quiet(deck.hook(inside))
    [child] = deck.by_key(CHILD)
    assert child["parent_id"] == root["id"]
    assert child["progress"] == "Read: src/cart.py"
    quiet(deck.hook(event("SubagentStop", agent_id="agent-7", agent_type="Explore",
                          last_assistant_message="cart.py rounds twice")))
    [child] = deck.by_key(CHILD)
    assert (child["status"], child["result"]) == ("finished", "cart.py rounds twice")

    quiet(deck.hook(event("PostToolBatch", tool_calls=[
        {"tool_name": "Edit", "tool_input": {"file_path": "src/cart.py"}, "tool_response": {}}])))
    quiet(deck.hook(event("Stop", last_assistant_message="done", stop_hook_active=False)))
    [root] = deck.by_key(ROOT)
    assert root["progress"] == "turn ended: waiting for the next prompt"
    quiet(deck.hook(event("SessionEnd", reason="prompt_input_exit")))
    [root] = deck.by_key(ROOT)
    assert (root["status"], root["result"]) == ("finished", "prompt_input_exit")
    # A second SessionEnd opens nothing new just to end it.
    quiet(deck.hook(event("SessionEnd", reason="other")))
    assert len(deck.by_key(ROOT)) == 1


@pytest.mark.timeout(60)
def test_a_quiet_session_ends_as_lost_after_its_idle_period(deck: HookDeck) -> None:
    quiet(deck.hook(event("UserPromptSubmit", prompt="hello"), "--idle", "0.01"))
    from tests.support import until_sync

    until_sync(lambda: deck.by_key(ROOT)[0]["status"] == "failed", timeout=10)
    [root] = deck.by_key(ROOT)
    assert root["end_reason"] == "lost"
    assert root["error"] == "no word from its reporter for 0.6s: its lease lapsed"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("reply", "reason", "expected"),
    [
        ("approve", None, {"behavior": "allow"}),
        ("deny", "tests must not touch the network", {"behavior": "deny",
                                                      "message": "tests must not touch the network"}),
        ("run only the unit tests", None, {"behavior": "deny",
                                           "message": "run only the unit tests"}),
        ("yes", None, {"behavior": "deny", "message": "yes"}),
    ],
)
def test_a_permission_request_prints_the_persons_answer(
    deck: HookDeck, reply: str, reason: str | None, expected: dict
) -> None:
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    assert task["blocked_on"]["summary"] == "npm test"
    extra = ["--reason", reason] if reason else []
    assert deck.run("answer", str(task["id"]), reply, *extra).returncode == 0
    out, err = hook.communicate(timeout=20)
    assert (hook.returncode, err) == (0, "")
    assert json.loads(out) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                                      "decision": expected}}
    [root] = deck.by_key(ROOT)
    assert root["status"] == "in_progress"  # the session goes on


@pytest.mark.timeout(60)
def test_a_gated_pre_tool_use_asks_and_a_reply_reaches_the_model(deck: HookDeck) -> None:
    # An ungated tool is only observed.
    quiet(deck.hook(event("PreToolUse", tool_name="Read", tool_input={"file_path": "a"}),
                    "--gate", "Bash"))
    hook = deck.start_hook(event("PreToolUse", **BASH, tool_use_id="t2"), "--gate", "Bash")
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "use make check instead").returncode == 0
    out, _ = hook.communicate(timeout=20)
    assert json.loads(out) == {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "use make check instead"}}

    hook = deck.start_hook(event("PreToolUse", **BASH, tool_use_id="t3"), "--gate", "Bash")
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "approve").returncode == 0
    out, _ = hook.communicate(timeout=20)
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "allow"


@pytest.mark.timeout(60)
def test_a_sub_agents_question_is_asked_on_its_child(deck: HookDeck) -> None:
    hook = deck.start_hook({**PERMISSION, "agent_id": "agent-7", "agent_type": "Explore"})
    task = deck.asking(CHILD)
    [root] = deck.by_key(ROOT)
    assert task["parent_id"] == root["id"]
    assert deck.run("answer", str(task["id"]), "deny").returncode == 0
    out, _ = hook.communicate(timeout=20)
    decision = json.loads(out)["hookSpecificOutput"]["decision"]
    assert decision["behavior"] == "deny"
    assert "denied in taskdeck by" in decision["message"]


@pytest.mark.timeout(60)
def test_abort_interrupts_the_question_and_stops_every_later_hook(deck: HookDeck) -> None:
    quiet(deck.hook(event("UserPromptSubmit", prompt="deploy")))
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    assert deck.run("abort", str(task["id"])).returncode == 0
    out, err = hook.communicate(timeout=20)
    assert err == ""
    answer = json.loads(out)
    assert answer["continue"] is False
    assert answer["stopReason"].startswith("aborted in taskdeck by ")
    decision = answer["hookSpecificOutput"]["decision"]
    assert (decision["behavior"], decision["interrupt"]) == ("deny", True)

    later = answer_of(deck.hook(event("PostToolUse", **BASH)))
    assert later == {"continue": False, "stopReason": answer["stopReason"]}
    gated = answer_of(deck.hook(event("PreToolUse", **BASH), "--gate", "Bash"))
    assert gated["continue"] is False
    assert gated["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert len(deck.by_key(ROOT)) == 1  # no new root for an aborted session


@pytest.mark.timeout(60)
def test_nobody_answering_in_time_denies_nothing_open(deck: HookDeck) -> None:
    result = deck.hook(event("PreToolUse", **BASH), "--gate", "Bash", "--timeout", "0.5")
    answer = answer_of(result)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert "nobody answered within 0.5s" in answer["permissionDecisionReason"]
    assert "nobody answered" in one_line(result)
    result = deck.hook(PERMISSION, "--timeout", "0.5")
    assert result.stdout == ""  # Claude Code's own dialog asks the person
    one_line(result)
    [root] = deck.by_key(ROOT)
    assert root["blocked_on"] is None


@pytest.mark.timeout(60)
def test_a_killed_hook_closes_its_question_with_a_deny(deck: HookDeck) -> None:
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    hook.terminate()
    out, err = hook.communicate(timeout=20)
    assert out == ""
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    shown = json.loads(deck.run("show", str(task["id"]), "--json").stdout)
    [prompt] = shown["prompts"]
    assert (prompt["answer"], prompt["state"]) == ("deny", "answered")
    assert "interrupted by SIGTERM" in prompt["reason"]


@pytest.mark.timeout(60)
def test_daemon_down_never_fails_open(tmp_path) -> None:
    deck = HookDeck(tmp_path)  # never served
    result = deck.hook(PERMISSION)
    assert result.stdout == ""
    assert "no daemon running" in one_line(result)
    result = deck.hook(event("PreToolUse", **BASH), "--gate", "Bash")
    reason = answer_of(result)["hookSpecificOutput"]["permissionDecisionReason"]
    assert "no daemon running" in reason
    quiet_but_said = deck.hook(event("PostToolUse", **BASH))
    assert quiet_but_said.stdout == ""
    one_line(quiet_but_said)


@pytest.mark.timeout(60)
def test_a_stopped_daemon_never_fails_open(deck: HookDeck) -> None:
    deck.process.send_signal(signal.SIGSTOP)  # its connection file stays; nothing answers
    result = deck.hook(event("PreToolUse", **BASH), "--gate", "Bash")
    reason = answer_of(result)["hookSpecificOutput"]["permissionDecisionReason"]
    assert reason.startswith("taskdeck could not ask a person: ")
    one_line(result)
    result = deck.hook(PERMISSION)
    assert result.stdout == ""
    one_line(result)


HOSTILE = [
    b"not json",
    b"",
    b"[1, 2]",
    b'{"hook_event_name": "PermissionRequest"}',
    b'{"hook_event_name": "PermissionRequest", "session_id": 7, "tool_name": "Bash"}',
    b'{"hook_event_name": "PreToolUse", "session_id": "s", "tool_name": "Bash", "tool_input": "rm"}',
    b'{"hook_event_name": "Mystery", "session_id": "s"}',
    b'{"hook_event_name": "PreToolUse", "session_id": "' + b"x" * (10 << 20) + b'"}',
    # Well formed, but the tool's input is over what an action may carry.
    b'{"hook_event_name": "PreToolUse", "session_id": "s", "tool_name": "Bash", '
    b'"tool_input": {"command": "' + b"x" * (300 << 10) + b'"}}',
    b'{"hook_event_name": "PermissionRequest", "session_id": "s", "tool_name": "Bash", '
    b'"tool_input": {"command": "' + b"x" * (300 << 10) + b'"}}',
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_stdin_gets_a_safe_answer(deck: HookDeck, raw: bytes) -> None:
    result = deck.hook(raw, "--gate", "Bash")
    one_line(result)
    assert result.returncode == 0
    if b"PreToolUse" in raw or not raw.startswith(b"{"):  # may be a gated call: denied
        answer = json.loads(result.stdout)["hookSpecificOutput"]
        assert answer["permissionDecision"] == "deny"
    if b"PermissionRequest" in raw:
        assert result.stdout == ""
    assert "allow" not in result.stdout
    assert deck.tasks() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("event", ["PostToolUse", "PermissionRequest"])
def test_the_hook_imports_no_dashboard_and_no_event_loop(event: str) -> None:
    """`taskdeck hook` starts for every tool call: an observation loads neither the
    dashboard nor asyncio (a third of its start-up); a decision loads no dashboard."""
    code = (
        "import sys, io\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'{\"hook_event_name\": \"%s\", "
        "\"session_id\": \"s\", \"tool_name\": \"Bash\"}'))\n"
        "from core import entry\n"
        "entry.main(['hook', 'claude', '--runtime-dir', '/nonexistent'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    ) % event
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=20, check=False)
    loaded = json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert {"core", "zmq"} <= set(loaded)  # it did reach for the daemon
    assert not {"textual", "tui", "rich", "sqlite3"} & set(loaded)
    if event == "PostToolUse":
        assert "asyncio" not in loaded


def prompts_of(deck: HookDeck, task_id: int) -> list[dict]:
    return json.loads(deck.run("show", str(task_id), "--json").stdout)["prompts"]


@pytest.mark.timeout(60)
def test_a_question_answered_in_the_agent_closes_with_the_sessions_next_event(tmp_path) -> None:
    deck = HookDeck(tmp_path)
    deck.serve("--journal", str(tmp_path / "journal.db"))
    try:
        _answered_in_the_agent(deck)
    finally:
        deck.stop()


def _answered_in_the_agent(deck: HookDeck) -> None:
    # Claude Code leaves a hook whose dialog the person answered running, unheard.
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    # Events that do not show the dialog was answered leave the question open.
    quiet(deck.hook(event("Notification", message="Claude needs your permission",
                          notification_type="permission_prompt")))
    quiet(deck.hook(event("PostToolUse", tool_name="Read", tool_input={"file_path": "a"})))
    [prompt] = prompts_of(deck, task["id"])
    assert prompt["state"] == "pending"
    # The call ran: the person let it in Claude Code's own dialog.
    quiet(deck.hook(event("PostToolUse", **BASH, tool_response={}, tool_use_id="t9")))
    [prompt] = prompts_of(deck, task["id"])
    assert (prompt["state"], prompt["answer"], prompt["reason"], prompt["answered_by"]) == \
        ("answered", "answered in the agent", "Bash ran", "Claude Code")
    out, err = hook.communicate(timeout=20)
    assert (hook.returncode, out, err) == (0, "", "")  # no verdict: the dialog decided
    [root] = deck.by_key(ROOT)
    assert (root["status"], root["blocked_on"]) == ("in_progress", None)
    history = deck.run("history")
    assert history.returncode == 0, history.stderr
    assert "answered in the agent: Bash ran" in history.stdout


@pytest.mark.timeout(60)
def test_a_question_whose_hook_is_gone_closes_with_the_next_event(deck: HookDeck) -> None:
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    hook.kill()  # SIGKILL: no chance to close its own question
    hook.communicate(timeout=20)
    assert prompts_of(deck, task["id"])[0]["state"] == "pending"
    quiet(deck.hook(event("Notification", message="Claude needs your permission")))
    [prompt] = prompts_of(deck, task["id"])
    assert (prompt["answer"], prompt["reason"]) == \
        ("answered in the agent", "the hook waiting on it is gone")
    # The session can ask again.
    hook = deck.start_hook(PERMISSION)
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "approve").returncode == 0
    out, _ = hook.communicate(timeout=20)
    assert json.loads(out)["hookSpecificOutput"]["decision"] == {"behavior": "allow"}


@pytest.mark.timeout(60)
def test_a_sub_agents_question_closes_when_the_sub_agent_ends(deck: HookDeck) -> None:
    sub = {"agent_id": "agent-7", "agent_type": "Explore"}
    hook = deck.start_hook({**PERMISSION, **sub})
    task = deck.asking(CHILD)
    quiet(deck.hook(event("Stop")))  # the main agent's turn: not the sub-agent's question
    assert prompts_of(deck, task["id"])[0]["state"] == "pending"
    quiet(deck.hook(event("SubagentStop", **sub, last_assistant_message="done")))
    [prompt] = prompts_of(deck, task["id"])
    assert (prompt["answer"], prompt["reason"]) == ("answered in the agent", "the sub-agent ended")
    out, _ = hook.communicate(timeout=20)
    assert out == ""
    [child] = deck.by_key(CHILD)
    assert child["status"] == "finished"


UNNEEDED = {"asyncio", "tree_sitter", "tree_sitter_bash", "textual", "tui", "rich", "sqlite3",
            "core.policy.shell", "core.policy.pattern", "core.policy.rules"}
"""What no hook loads, since it starts for every tool call: an event loop, the approval
rules' matching and its shell parser, the dashboard, the journal."""


def hook_in_python(hook_event: dict) -> str:
    """Python that runs `taskdeck hook claude` on the event, then prints what it loaded."""
    return (
        "import io, json, sys\n"
        f"sys.stdin = io.TextIOWrapper(io.BytesIO({json.dumps(hook_event).encode()!r}))\n"
        "from core import entry\n"
        "entry.main(['hook', 'claude'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )


def needless(modules: list[str]) -> set[str]:
    """The modules of `UNNEEDED` (or of its packages) among those loaded."""
    return {m for m in modules if m in UNNEEDED or m.split(".")[0] in UNNEEDED}


@pytest.mark.timeout(60)
def test_an_observed_event_loads_no_event_loop_and_no_shell_parser(deck: HookDeck) -> None:
    """An observation carried out on the daemon loads only what its wire messages need."""
    hook = subprocess.run([sys.executable, "-c", hook_in_python(event("PostToolUse", **BASH))],
                          env=deck.env, capture_output=True, text=True, timeout=30, check=False)
    assert (hook.returncode, hook.stderr) == (0, "")
    [root] = deck.by_key(ROOT)
    assert root["progress"] == "Bash: npm test"  # it did reach the daemon
    loaded = json.loads(hook.stdout)
    assert {"zmq", "msgspec", "core.protocol", "core.client.blocking"} <= set(loaded)
    assert needless(loaded) == set()


@pytest.mark.timeout(60)
def test_a_decision_waits_without_an_event_loop(deck: HookDeck) -> None:
    """The wait for a person is a blocking subscription: no asyncio, no snapshot, and no
    shell parser either (the rules decide in the daemon)."""
    hook = subprocess.Popen([sys.executable, "-c", hook_in_python(PERMISSION)], env=deck.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    task = deck.asking(ROOT)
    assert deck.run("answer", str(task["id"]), "approve").returncode == 0
    out, err = hook.communicate(timeout=20)
    answer, loaded = out.strip().splitlines()
    assert json.loads(answer)["hookSpecificOutput"]["decision"] == {"behavior": "allow"}
    assert needless(json.loads(loaded)) == set()


@pytest.mark.timeout(90)
def test_a_waiting_hook_gets_its_answer_across_a_daemon_restart(tmp_path) -> None:
    """kill -9 and a new daemon on the same journal: the question is still pending there,
    the waiting hook finds it again, and the answer given after the restart reaches it."""
    deck = HookDeck(tmp_path)
    journal = str(tmp_path / "journal.db")
    deck.serve("--journal", journal)
    try:
        hook = deck.start_hook(PERMISSION)
        task = deck.asking(ROOT)
        deck.process.kill()
        deck.process.wait(timeout=10)
        (deck.runtime_dir / "daemon.json").unlink()  # as a crash leaves it: no clean-up ran
        deck.serve("--journal", journal)
        assert deck.asking(ROOT)["id"] == task["id"]
        assert deck.run("answer", str(task["id"]), "approve").returncode == 0
        out, err = hook.communicate(timeout=30)
        assert (hook.returncode, err) == (0, "")
        assert json.loads(out)["hookSpecificOutput"]["decision"] == {"behavior": "allow"}
    finally:
        deck.stop()
