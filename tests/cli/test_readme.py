"""The README's Python examples run as written against a real daemon."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Deck
from tests.support import until_sync

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_agent_example_runs_under_serve(tmp_path: Path) -> None:
    [agent_code] = [b for b in python_blocks() if "async def reviewer" in b]
    (tmp_path / "readme_agents.py").write_text(agent_code)
    deck = Deck(tmp_path)
    deck.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), deck.env.get("PYTHONPATH", "")])
    deck.serve("--agents", "readme_agents:reviewer")
    try:
        submitted = deck.run("submit", "reviewer", "review PR 812")
        assert submitted.returncode == 0, submitted.stderr
        task = deck.blocked_task("review PR 812")
        assert task["blocked_on"]["question"] == "Post the review?"
        assert task["prompt_tokens"] == 4200
        deck.run("answer", str(task["id"]), "deny")
        until_sync(
            lambda: next(t for t in deck.tasks() if t["id"] == task["id"])["status"] == "finished"
        )
        assert next(t for t in deck.tasks() if t["id"] == task["id"])["result"] == (
            "review kept as a draft"
        )
    finally:
        deck.stop()


def test_the_external_task_example_runs(tmp_path: Path) -> None:
    [script] = [b for b in python_blocks() if "SyncClient" in b]
    deck = Deck(tmp_path)
    deck.serve()
    try:
        reporter = subprocess.Popen(
            [sys.executable, "-c", script], env=deck.env, stderr=subprocess.PIPE, text=True
        )
        task = deck.blocked_task("nightly export")
        assert task["blocked_on"]["question"] == "Overwrite yesterday's export?"
        deck.run("answer", str(task["id"]), "approve")
        assert reporter.wait(timeout=15) == 0, reporter.stderr.read()
        done = next(t for t in deck.tasks() if t["id"] == task["id"])
        assert (done["status"], done["result"]) == ("finished", "done")
    finally:
        deck.stop()
