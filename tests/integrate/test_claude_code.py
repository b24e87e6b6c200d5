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


@pytest.mark.parametrize("where", ["--user", "--project"])
def test_claude_code_reads_the_hooks_where_integrate_puts_them(deck: Deck, tmp_path: Path,
                                                              where: str) -> None:
    """No --settings on Claude Code's command line: it finds our hooks on its own."""
    claude = installed(CLAUDE_CODE)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**deck.env, "HOME": str(home)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    target = [where] + ([str(work)] if where == "--project" else [])
    written = subprocess.run([str(TASKDECK), "integrate", "claude", *target], env=env,
                             capture_output=True, text=True, timeout=30, check=False)
    assert written.returncode == 0, written.stderr
    expected = (home / ".claude" / "settings.json" if where == "--user"
                else work / ".claude" / "settings.local.json")
    assert expected.exists()

    session = str(uuid.uuid4())
    with FakeAnthropic([text("hello back")]) as model:
        result = subprocess.run(
            [str(claude), "-p", "say hello", "--output-format", "json", "--session-id", session],
            cwd=work, env={**env, **model.env(home)}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=WAIT, check=False)
    assert result.returncode == 0, result.stderr
    task = by_key(deck, f"claude:{session}")
    assert task is not None, "the hooks did not run"
    assert task["description"] == f"{work}: say hello"
    until_sync(lambda: (by_key(deck, f"claude:{session}") or {}).get("status") == "finished",
               timeout=WAIT, what="the session's task to finish")
