"""Shared parts of the end-to-end suites: a real daemon, a private home for the agent, tmux.

Nothing here knows a particular agent: a suite brings its binary and its fake model
server, and drives them against the `deck` (a real `taskdeck serve` in a temp runtime
dir), answering through the real `taskdeck` command line as a person would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import Deck
from tests.support import until_sync

WAIT = 20.0
"""Seconds a test waits for the agent or the daemon to reach a state (tests last ≤ 30 s)."""


def hook_command(agent: str, *args: str) -> str:
    """The shell command an agent's hook settings run: this checkout's `taskdeck hook AGENT`."""
    return shlex.join([sys.executable, "-m", "core.entry", "hook", agent, *args])


def printed_result(process: subprocess.Popen[str], timeout: float = WAIT) -> dict:
    """Wait for an agent run in print mode to end; the JSON result it printed."""
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), f"{process.args[0]} printed no result (exit {process.returncode}): {err}"
    return json.loads(out)


class AgentDeck(Deck):
    """A deck with the look-ups an end-to-end test needs: tasks by key, prompts, answers."""

    def ok(self, *args: str) -> str:
        """Run a `taskdeck` command that must succeed; its stdout."""
        result = self.run(*args)
        assert result.returncode == 0, f"taskdeck {' '.join(args)}: {result.stderr}"
        return result.stdout

    def by_key(self, key: str) -> list[dict]:
        return [t for t in self.tasks() if t.get("key") == key]

    def task(self, key: str, *, until: Callable[[dict], object] = bool,
             what: str = "", timeout: float = WAIT) -> dict:
        """Wait until the newest task opened with `key` exists and satisfies `until`; return it."""
        found: list[dict] = []

        def ready() -> bool:
            found[:] = self.by_key(key)[:1]
            return bool(found) and bool(until(found[0]))

        until_sync(ready, timeout=timeout, what=f"task {key} {what}".strip())
        return found[0]

    def asking(self, key: str, timeout: float = WAIT) -> dict:
        """Wait until the task opened with `key` is blocked on a question; return the task."""
        return self.task(key, until=lambda t: t["blocked_on"], what="to ask", timeout=timeout)

    def ended(self, key: str, timeout: float = WAIT) -> dict:
        """Wait until the task opened with `key` has ended; return it."""
        return self.task(key, until=lambda t: t["status"] in ("finished", "failed"),
                         what="to end", timeout=timeout)

    def show(self, task_id: int) -> dict:
        """`taskdeck show ID --json`: the task, its prompts and the decisions about it."""
        return json.loads(self.ok("show", str(task_id), "--json"))

    def prompts(self, task_id: int) -> list[dict]:
        return self.show(task_id)["prompts"]

    def answer(self, task: dict, text: str, *extra: str) -> None:
        """Answer the question `task` waits on, as a person does, naming the prompt."""
        prompt = str(task["blocked_on"]["prompt_id"])
        self.ok("answer", str(task["id"]), text, "--prompt", prompt, *extra)

    def stop(self) -> None:
        """Stop the daemon, then every process still running with this deck's runtime dir
        in its environment: an agent and the hooks it started, which an agent that exits
        may leave behind, waiting out their own timeouts."""
        super().stop()
        marker = f"TASKDECK_RUNTIME_DIR={self.runtime_dir}".encode()
        left = [pid for pid, env in _environments() if marker in env.split(b"\0")]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _environments() -> Iterator[tuple[int, bytes]]:
    """(pid, environment) of every process this user may read, this one excluded."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                yield int(entry.name), (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue


@pytest.fixture
def deck(tmp_path: Path) -> Iterator[AgentDeck]:
    """A real daemon in `tmp_path/run`, stopped after the test."""
    with AgentDeck(tmp_path).running() as deck:
        yield deck


@dataclass(frozen=True)
class Place:
    """Where an agent runs: a private HOME and a fresh working directory."""

    home: Path
    work: Path


@pytest.fixture
def place(tmp_path: Path) -> Place:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Place(home, work)


class Tmux:
    """One program in a tmux session on a private server: keys in, screen text out."""

    def __init__(self, socket: Path, size: tuple[int, int] = (120, 40)) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise AssertionError("tmux is not installed: the interactive end-to-end tests need it")
        config = socket.with_name("tmux.conf")
        # Set before the program starts: a pane that ends at once still shows its last screen.
        config.write_text("set -g remain-on-exit on\n")
        self.base = [tmux, "-S", str(socket), "-f", str(config)]
        self.size = size
        self.started = False

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True, env=env,
                                timeout=10, check=False)
        assert result.returncode == 0, f"tmux {args[0]}: {result.stderr.strip()}"
        return result.stdout

    def start(self, command: list[str], *, env: dict[str, str], cwd: Path) -> None:
        """Run `command` in a new session (the server inherits `env`, as a shell would)."""
        columns, rows = self.size
        self._tmux("new-session", "-d", "-s", "e2e", "-x", str(columns), "-y", str(rows),
                   "-c", str(cwd), shlex.join(command), env=env)
        self.started = True

    def send(self, *keys: str, literal: bool = False) -> None:
        """Press keys (tmux key names, or text with `literal`)."""
        self._tmux("send-keys", "-t", "e2e", *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "e2e")

    def shows(self, *texts: str, timeout: float = WAIT) -> str:
        """Wait until the screen shows every one of `texts`; return the screen."""
        seen: list[str] = [""]

        def showing() -> bool:
            seen[0] = self.screen()
            return all(t in seen[0] for t in texts)

        try:
            until_sync(showing, timeout=timeout, what=f"the screen to show {texts}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{seen[0]}") from None
        return seen[0]

    def exited(self) -> bool:
        """True once the program in the pane has ended."""
        return self._tmux("display-message", "-p", "-t", "e2e", "#{pane_dead}").strip() == "1"

    def stop(self) -> None:
        if self.started:
            subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10,
                           check=False)
            self.started = False


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server, killed after the test. Its socket lives in a short temp dir:
    a socket path over 107 bytes (a long test name under tmp_path) cannot be bound."""
    with tempfile.TemporaryDirectory(prefix="tmx") as sockets:
        terminal = Tmux(Path(sockets) / "s")
        try:
            yield terminal
        finally:
            terminal.stop()
