"""When the other side has gone: a killed daemon is found out at once, and a hook whose
agent died closes its question instead of holding it open. Never an approval either way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.client import SyncClient
from core.errors import Unavailable
from core.runtime import nothing_listens, read_connection
from tests.bridges.conftest import HookDeck
from tests.bridges.test_claude_hook import BASH, PERMISSION, answer_of, event, one_line
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)


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
