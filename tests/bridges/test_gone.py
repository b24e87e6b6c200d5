"""When the other side has gone: a killed daemon is found out at once, and a hook whose
agent died closes its question instead of holding it open. Never an approval either way."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.client import SyncClient
from core.errors import Unavailable
from core.runtime import nothing_listens, read_connection
from tests.bridges.conftest import HookDeck
from tests.bridges.test_claude_hook import BASH, PERMISSION, SESSION, answer_of, event, one_line
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def killed(deck: HookDeck) -> int:
    """SIGKILL the daemon (no clean-up: its connection file stays); its pid."""
    assert deck.process is not None
    deck.process.kill()
    deck.process.wait(timeout=10)
    assert (deck.runtime_dir / "daemon.json").exists()
    return deck.process.pid


def test_a_killed_daemon_is_reported_without_waiting_for_a_reply(deck: HookDeck) -> None:
    """The connection file names a dead pid and its ipc socket refuses: no request timeout
    is waited out (20 s here; the old rule waited one whole timeout first)."""
    commands = read_connection(deck.runtime_dir).commands
    assert not nothing_listens(commands)  # a live daemon listens
    pid = killed(deck)
    assert nothing_listens(commands)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"pid {pid}, which has exited"):
        with SyncClient(deck.runtime_dir, request_timeout=20, retries=3) as client:
            client.hello()
    assert time.monotonic() - started < 10  # well short of one request timeout


def test_a_hook_against_a_killed_daemon_fails_safe_and_says_why(deck: HookDeck) -> None:
    pid = killed(deck)
    gated = deck.hook(event("PreToolUse", **BASH), "--gate", "Bash")
    output = answer_of(gated)["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny"
    assert f"pid {pid}, which has exited" in output["permissionDecisionReason"]
    asked = deck.hook(PERMISSION)
    assert asked.stdout == ""  # no verdict: the agent's own dialog asks
    assert f"pid {pid}, which has exited" in one_line(asked)


def test_a_daemon_started_again_is_reached_on_the_same_runtime_dir(deck: HookDeck) -> None:
    killed(deck)
    deck.serve()  # returns at once: the old connection file is still there
    until_sync(lambda: read_connection(deck.runtime_dir).pid == deck.process.pid,  # type: ignore[union-attr]
               timeout=15, what="the new daemon's connection file")
    with SyncClient(deck.runtime_dir, request_timeout=20) as client:
        assert client.hello()["pid"] == deck.process.pid  # type: ignore[union-attr]


def test_tcp_and_odd_endpoints_are_never_taken_for_dead(tmp_path: Path) -> None:
    assert not nothing_listens("tcp://127.0.0.1:1")
    assert nothing_listens(f"ipc://{tmp_path}/no-such-socket")
    assert not nothing_listens(f"ipc://{tmp_path}/{'x' * 200}")  # too long to tell


AGENT = """
import subprocess, sys
command, stdin, stdout = sys.argv[1:]
with open(stdin) as given, open(stdout, "w") as answer:
    subprocess.run(command, shell=True, stdin=given, stdout=answer)
"""
"""A stand-in for the agent: runs the hook command through `sh -c` as Claude Code does,
the event on stdin, the answer into a file; killed, it leaves the hook orphaned."""


def start_agent(deck: HookDeck, tmp_path: Path, between: str) -> tuple[subprocess.Popen, Path]:
    """The stand-in agent running a gated PreToolUse hook (30 s timeout); the answer's file."""
    stdin, stdout = tmp_path / "event.json", tmp_path / "answer.json"
    stdin.write_text(json.dumps(event("PreToolUse", **BASH)))
    hook = " ".join([sys.executable, "-m", "core.entry", "hook", "claude", "--gate", "Bash",
                     "--timeout", "30"])
    agent = subprocess.Popen([sys.executable, "-c", AGENT, hook + between, str(stdin),
                              str(stdout)], env=deck.env, cwd=ROOT)
    return agent, stdout


@pytest.mark.parametrize("between", ["", "; :"], ids=["shell-execs-the-hook", "shell-waits"])
def test_a_hook_whose_agent_died_closes_its_question(
    deck: HookDeck, tmp_path: Path, between: str
) -> None:
    """SIGKILL the agent while its hook waits on a person: the question closes at once
    as denied ("the agent went away"), not after the hook's 30 s timeout, and the hook
    exits with its fail-safe deny, nothing approved."""
    agent, stdout = start_agent(deck, tmp_path, between)
    try:
        task = deck.asking(f"claude:{SESSION}")
        agent.kill()
        agent.wait(timeout=10)
        closed: list[dict] = []

        def closed_by_the_hook() -> bool:
            shown = json.loads(deck.run("show", str(task["id"]), "--json").stdout)
            closed[:] = [q for q in shown["prompts"] if q["state"] != "pending"]
            return bool(closed)

        until_sync(closed_by_the_hook, timeout=15, what="the orphaned hook to close its question")
        [prompt] = closed
        assert (prompt["state"], prompt["answer"]) == ("answered", "deny")
        assert "the agent went away (python" in prompt["reason"]
        assert f"pid {agent.pid}, exited" in prompt["reason"]
        until_sync(lambda: stdout.read_text().strip() != "", timeout=15,
                   what="the hook to answer and exit")
        said = json.loads(stdout.read_text())["hookSpecificOutput"]
        assert said["permissionDecision"] == "deny"
        assert "the agent went away" in said["permissionDecisionReason"]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_hook_whose_agent_lives_keeps_waiting_for_the_person(deck: HookDeck, tmp_path: Path) -> None:
    """The same agent and shell, alive: the watch closes nothing, the person's answer lands."""
    agent, stdout = start_agent(deck, tmp_path, "; :")
    try:
        task = deck.asking(f"claude:{SESSION}")  # the hook looks at its agent from now on
        assert deck.run("answer", str(task["id"]), "approve").returncode == 0
        assert agent.wait(timeout=15) == 0
        said = json.loads(stdout.read_text())["hookSpecificOutput"]
        assert said["permissionDecision"] == "allow"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
