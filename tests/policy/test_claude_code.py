"""End to end with the real Claude Code (pinned, offline against a fake model): rules decide
its gated tool calls through `taskdeck hook claude`, and the audit names them."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.bridges.conftest import HookDeck
from tests.cli.conftest import TASKDECK
from tests.fakes.messages_api import Script, serving
from tests.support import until_sync

pytestmark = pytest.mark.timeout(240)

TWICE = "run the tests twice"
ONCE = "run the tests"
SCRIPT = {TWICE: ["npm test", "npm test -- --ci"], ONCE: ["npm test"]}


def claude(deck: HookDeck, url: str, tmp: Path, prompt: str, session: str,
           allow: list[str] = ()) -> subprocess.Popen[str]:
    """Claude Code in print mode, its Bash calls gated by the hook, its own settings allowing
    `allow`."""
    home, work = tmp / "home", tmp / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    (work / "package.json").write_text(json.dumps(
        {"name": "shop", "version": "1.0.0", "scripts": {"test": "echo all tests pass"}}))
    settings = tmp / f"settings-{session}.json"
    hook = f"{TASKDECK} hook claude"
    settings.write_text(json.dumps({
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [
                {"type": "command", "command": f"{hook} --gate Bash --timeout 60",
                 "timeout": 90}]}],
            "SessionEnd": [{"hooks": [{"type": "command", "command": hook}]}],
        },
        "permissions": {"allow": list(allow)},
    }))
    env = {**deck.env, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": "test",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
           "DISABLE_AUTOUPDATER": "1", "HOME": str(home)}
    env.pop("ANTHROPIC_API_KEY", None)
    return subprocess.Popen(
        [str(installed(CLAUDE_CODE)), "-p", prompt, "--output-format", "json",
         "--settings", str(settings), "--session-id", session],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finished(process: subprocess.Popen[str]) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"{out}\n{err}"


def history(deck: HookDeck) -> list[dict]:
    ran = deck.run("history", "--json")
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def test_approve_for_this_session_lets_its_next_npm_test_run_unasked(
    journaled: HookDeck, tmp_path: Path,
) -> None:
    deck = journaled
    script = Script(SCRIPT)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with serving(script) as url:
        run = claude(deck, url, tmp_path, TWICE, first)
        asking = deck.asking(f"claude:{first}")
        assert asking["blocked_on"]["summary"] == "npm test"
        # "approve for this session": the rule answers the waiting question, then the next
        added = deck.run("rules", "add", "allow", "Bash(npm test *)", "--session", first)
        assert added.returncode == 0, added.stderr
        finished(run)
        results = script.tool_results()
        assert len(results) == 2 and not any(r.get("is_error") for r in results)
        assert all("all tests pass" in json.dumps(r) for r in results)  # npm test ran, twice
        decided = [h for h in history(deck) if h["action"] == "answer"]
        assert [(h["by"], h["summary"]) for h in decided] == [
            ("rule 1", "npm test"), ("rule 1", "npm test -- --ci")]

        other = claude(deck, url, tmp_path, ONCE, second)  # another session is still asked
        asking = deck.asking(f"claude:{second}")
        assert deck.run("answer", str(asking["id"]), "deny", "--reason", "not now").returncode == 0
        finished(other)
        last = script.tool_results()[-1]
        assert last.get("is_error") and "not now" in json.dumps(last)
    [rule] = json.loads(deck.run("rules", "ls", "--json").stdout)
    assert rule["hits"] == 2


def test_a_deny_rule_blocks_what_claude_codes_own_settings_allow(
    journaled: HookDeck, tmp_path: Path,
) -> None:
    deck = journaled
    script = Script(SCRIPT)
    session = str(uuid.uuid4())
    assert deck.run("rules", "add", "deny", "Bash(npm test *)").returncode == 0
    with serving(script) as url:
        finished(claude(deck, url, tmp_path, ONCE, session, allow=["Bash(npm test *)"]))
    [result] = script.tool_results()
    assert result.get("is_error") and "all tests pass" not in json.dumps(result)
    assert "denied by rule 1: Bash(npm test *)" in json.dumps(result)
    [decision] = [h for h in history(deck) if h["action"] == "answer"]
    assert decision["by"] == "rule 1" and decision["detail"].startswith("deny")
    until_sync(lambda: all(t["blocked_on"] is None for t in deck.tasks()),
               what="no question left open")
