"""A real `taskdeck serve` in a temp runtime dir, and real `taskdeck` commands against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import pytest

from tests.support import until_sync


TASKDECK = str(Path(sys.executable).with_name("taskdeck"))
"""The `taskdeck` script pip installed next to this Python."""


class Deck:
    """A `taskdeck serve` process in a temp runtime dir, and a way to run commands against it."""

    python = sys.executable

    def __init__(self, tmp: Path) -> None:
        self.runtime_dir = tmp / "run"
        self.env = {
            **os.environ,
            "TASKDECK_RUNTIME_DIR": str(self.runtime_dir),
            "TASKDECK_STATE_DIR": str(tmp / "state"),
        }
        self.process: subprocess.Popen[str] | None = None

    def serve(self, *extra: str, cwd: Path | None = None, script: bool = False) -> None:
        """Start the daemon; `script` runs it through the installed `taskdeck` entry point
        (as a user does) instead of `python -m`, which puts the current directory on the path."""
        journal = [] if "--journal" in extra else ["--no-journal"]
        command = [TASKDECK] if script else [sys.executable, "-m", "core.cli"]
        self.process = subprocess.Popen(
            [*command, "serve", *journal, *extra],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        until_sync(
            lambda: (self.runtime_dir / "daemon.json").exists() or self.process.poll() is not None,
            timeout=15,
            what="the daemon's connection file",
        )
        assert self.process.poll() is None, self.process.stdout.read()

    @contextmanager
    def running(self, *extra: str) -> Iterator[Self]:
        """Serve (with `extra` options) for the `with` block, then stop: a fixture's whole life."""
        self.serve(*extra)
        try:
            yield self
        finally:
            self.stop()

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # the tests assert on the exit code
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def tasks(self) -> list[dict]:
        result = self.run("ls", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def blocked_task(self, description: str) -> dict:
        """Wait until the task with that description is blocked on a question; return it."""
        found: list[dict] = []

        def blocked() -> bool:
            found[:] = [
                t for t in self.tasks()
                if t["description"] == description and t["blocked_on"] is not None
            ]
            return bool(found)

        until_sync(blocked, timeout=15, what=f"{description!r} to ask")
        return found[0]

    def asked(self, asker: subprocess.Popen[str]) -> tuple[int, str]:
        """Read `ask`'s stderr up to the line that says how to answer: (task id, that line)."""
        line = asker.stderr.readline()
        assert line.startswith("taskdeck: asked as task "), line
        return int(line.split()[4]), line.strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a test may have stopped it
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture
def deck(tmp_path: Path) -> Iterator[Deck]:
    with Deck(tmp_path).running() as deck:
        yield deck


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskdeck: ")
    return lines[0]


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """A refused argument: one line naming the command, exit 2, and a pointer to --help."""
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("taskdeck ") and line.endswith("--help)")
    return line


