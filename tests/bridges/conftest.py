"""A real daemon in a temp runtime dir, and `taskdeck hook AGENT` run as the agent runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Deck
from tests.support import until_sync


class HookDeck(Deck):
    """A deck that also runs hooks: one JSON event on stdin, the answer on stdout."""

    def hook(
        self, event: dict | bytes, *args: str, agent: str = "claude", timeout: float = 20
    ) -> subprocess.CompletedProcess[str]:
        data = event if isinstance(event, bytes) else json.dumps(event).encode()
        result = subprocess.run(
            [sys.executable, "-m", "core.entry", "hook", agent, *args],
            env=self.env, input=data, capture_output=True, timeout=timeout, check=False,
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )

    def start_hook(self, event: dict, *args: str, agent: str = "claude") -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.entry", "hook", agent, *args],
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(event))
        process.stdin.close()
        process.stdin = None  # so communicate() reads the answer without flushing it
        return process

    def asking(self, key: str) -> dict:
        """Wait until the task opened with `key` is blocked on a question; return it."""
        found: list[dict] = []

        def blocked() -> bool:
            found[:] = [t for t in self.tasks() if t["key"] == key and t["blocked_on"]]
            return bool(found)

        until_sync(blocked, timeout=15, what=f"{key} to ask")
        return found[0]

    def by_key(self, key: str) -> list[dict]:
        return [t for t in self.tasks() if t["key"] == key]


@pytest.fixture
def deck(tmp_path: Path) -> Iterator[HookDeck]:
    deck = HookDeck(tmp_path)
    deck.serve()
    try:
        yield deck
    finally:
        deck.stop()
