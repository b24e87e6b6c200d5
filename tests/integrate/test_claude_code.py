"""After `taskdeck integrate claude`, the real Claude Code runs our hooks: the proof end to end.

The pinned `claude` runs `-p` offline against the fake Messages API, with only the settings
file integrate wrote, and a real daemon; a person approves the gated Bash call through
`taskdeck answer`. The settings' command is the installed `taskdeck` script, as a user gets it.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.cli.conftest import TASKDECK
from tests.e2e.conftest import AgentDeck, Place
from tests.fakes.anthropic import FakeAnthropic, bash, text
from tests.support import until_sync

pytestmark = pytest.mark.timeout(90)

WAIT = 30.0


def test_claude_code_runs_the_hooks_integrate_wrote(deck: AgentDeck, place: Place) -> None:
    claude = installed(CLAUDE_CODE)
    home, work = place.home, place.work
    settings = home / "settings.json"
    written = subprocess.run(
        [TASKDECK, "integrate", "claude", "--settings", str(settings), "--gate", "Bash",
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
                asking[:] = [t for t in deck.by_key(key) if t["blocked_on"]]
                return bool(asking) or agent.poll() is not None

            until_sync(blocked, timeout=WAIT, what="Claude Code's Bash call to ask in taskdeck")
            assert asking, agent.communicate(timeout=10)
            task = asking[0]
            assert task["agent"] == "claude"
            assert task["description"] == f"{work}: make a file"  # opened by UserPromptSubmit
            assert task["blocked_on"]["question"].startswith("Claude Code asks to run Bash: touch ran")
            assert not (work / "ran").exists()
            deck.answer(task, "approve")
            out, err = agent.communicate(timeout=WAIT)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
    assert agent.returncode == 0, err
    assert json.loads(out)["result"] == "done"
    assert (work / "ran").exists()
    deck.task(key, until=lambda t: t["status"] == "finished", what="to finish with SessionEnd",
              timeout=WAIT)


@pytest.mark.parametrize("where", ["--user", "--project"])
def test_claude_code_reads_the_hooks_where_integrate_puts_them(deck: AgentDeck, place: Place,
                                                              where: str) -> None:
    """No --settings on Claude Code's command line: it finds our hooks on its own."""
    claude = installed(CLAUDE_CODE)
    home, work = place.home, place.work
    env = {**deck.env, "HOME": str(home)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    target = [where] + ([str(work)] if where == "--project" else [])
    written = subprocess.run([TASKDECK, "integrate", "claude", *target], env=env,
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
    found = deck.by_key(f"claude:{session}")
    assert found, "the hooks did not run"
    task = found[0]
    assert task["description"] == f"{work}: say hello"
    deck.task(task["key"], until=lambda t: t["status"] == "finished", what="to finish",
              timeout=WAIT)
