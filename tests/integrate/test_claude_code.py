"""After `taskdeck integrate claude`, the real Claude Code runs our hooks: the proof end to end.

The pinned `claude` runs `-p` offline against the fake Messages API, with only the settings
file integrate wrote, and a real daemon; a person approves the gated Bash call through
`taskdeck answer`. The settings' command is the installed `taskdeck` script, as a user gets it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.cli.conftest import Deck, deck  # noqa: F401  (the fixture)
from tests.fakes.anthropic import FakeAnthropic, bash, text
from tests.support import until_sync

pytestmark = pytest.mark.timeout(90)

TASKDECK = Path(sys.executable).with_name("taskdeck")
WAIT = 30.0


def by_key(deck: Deck, key: str) -> dict | None:
    return next((t for t in deck.tasks() if t.get("key") == key), None)


def test_claude_code_runs_the_hooks_integrate_wrote(deck: Deck, tmp_path: Path) -> None:
    claude = installed(CLAUDE_CODE)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    settings = home / "settings.json"
    written = subprocess.run(
        [str(TASKDECK), "integrate", "claude", "--settings", str(settings), "--gate", "Bash",
         "--timeout", "40"],
        env=deck.env, capture_output=True, text=True, timeout=30, check=False)
    assert written.returncode == 0, written.stderr

    session = str(uuid.uuid4())
    key = f"claude:{session}"
    with FakeAnthropic([bash("touch ran", "make a file"), text("done")]) as model:
        agent = subprocess.Popen(
            [str(claude), "-p", "make a file", "--output-format", "json",
             "--settings", str(settings), "--session-id", session],
            cwd=work, env={**deck.env, **model.env(home)}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            asking: list[dict] = []

            def blocked() -> bool:
                task = by_key(deck, key)
                asking[:] = [task] if task and task["blocked_on"] else []
                return bool(asking) or agent.poll() is not None

            until_sync(blocked, timeout=WAIT, what="Claude Code's Bash call to ask in taskdeck")
            assert asking, agent.communicate(timeout=10)
            task = asking[0]
            assert task["agent"] == "claude"
            assert task["description"] == f"{work}: make a file"  # opened by UserPromptSubmit
            assert task["blocked_on"]["question"].startswith("Claude Code asks to run Bash: touch ran")
            assert not (work / "ran").exists()
            answer = deck.run("answer", str(task["id"]), "approve",
                              "--prompt", str(task["blocked_on"]["prompt_id"]))
            assert answer.returncode == 0, answer.stderr
            out, err = agent.communicate(timeout=WAIT)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    assert agent.returncode == 0, err
    assert json.loads(out)["result"] == "done"
    assert (work / "ran").exists()
    until_sync(lambda: (by_key(deck, key) or {}).get("status") == "finished", timeout=WAIT,
               what="the session's task to finish with SessionEnd")
