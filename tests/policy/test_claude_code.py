"""End to end with the real Claude Code (pinned, offline against tests/fakes/anthropic.py):
rules decide its gated tool calls through `taskdeck hook claude`, and the audit names them."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.e2e.conftest import WAIT, AgentDeck, Place, hook_command
from tests.fakes.anthropic import FakeAnthropic, bash, result_text, text
from tests.support import until_sync

pytestmark = pytest.mark.timeout(240)

RULE = "Bash(npm test *)"


@pytest.fixture
def model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def claude(deck: AgentDeck, model: FakeAnthropic, place: Place, session: str,
           allow: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """Claude Code in print mode, its Bash calls gated by the hook, its own settings allowing
    `allow`."""
    (place.work / "package.json").write_text(json.dumps(
        {"name": "shop", "version": "1.0.0", "scripts": {"test": "echo all tests pass"}}))
    settings = place.home / f"settings-{session}.json"
    settings.write_text(json.dumps({
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [
                {"type": "command", "command": hook_command("claude", "--gate", "Bash",
                                                            "--timeout", "60"),
                 "timeout": 90}]}],
            "SessionEnd": [{"hooks": [{"type": "command", "command": hook_command("claude")}]}],
        },
        "permissions": {"allow": list(allow)},
    }))
    return subprocess.Popen(
        [str(installed(CLAUDE_CODE)), "-p", "run the tests", "--output-format", "json",
         "--settings", str(settings), "--session-id", session],
        cwd=place.work, env={**deck.env, **model.env(place.home)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finished(process: subprocess.Popen[str], model: FakeAnthropic) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"{out}\n{err}"
    assert model.overrun == 0, "the session asked the model more than its script"


def decisions(deck: AgentDeck) -> list[dict]:
    return [h for h in json.loads(deck.ok("history", "--json")) if h["action"] == "answer"]


def test_approve_for_this_session_lets_its_next_npm_test_run_unasked(
    journaled: AgentDeck, model: FakeAnthropic, place: Place,
) -> None:
    deck = journaled
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    runs = [bash("npm test", "run it"), bash("npm test -- --ci", "run it")]
    model.add(*runs, text("done"))
    run = claude(deck, model, place, first)
    asking = deck.asking(f"claude:{first}")
    assert asking["blocked_on"]["summary"] == "npm test"
    # "approve for this session": the rule answers the waiting question, then the next
    deck.ok("rules", "add", "allow", RULE, "--session", first)
    finished(run, model)
    results = [model.result_for(turn) for turn in runs]
    assert all(r is not None and not r.get("is_error") for r in results)
    assert all("all tests pass" in result_text(r) for r in results)  # npm test ran, twice
    assert [(h["by"], h["summary"]) for h in decisions(deck)] == [
        ("rule 1", "npm test"), ("rule 1", "npm test -- --ci")]

    again = bash("npm test", "run it")
    model.add(again, text("done"))
    other = claude(deck, model, place, second)  # another session is still asked
    asking = deck.asking(f"claude:{second}")
    deck.ok("answer", str(asking["id"]), "deny", "--reason", "not now")
    finished(other, model)
    last = model.result_for(again)
    assert last is not None and last.get("is_error") and "not now" in result_text(last)
    [rule] = json.loads(deck.ok("rules", "ls", "--json"))
    assert rule["hits"] == 2


def test_a_deny_rule_blocks_what_claude_codes_own_settings_allow(
    journaled: AgentDeck, model: FakeAnthropic, place: Place,
) -> None:
    deck = journaled
    deck.ok("rules", "add", "deny", RULE)
    run = bash("npm test", "run it")
    model.add(run, text("done"))
    finished(claude(deck, model, place, str(uuid.uuid4()), allow=(RULE,)), model)
    result = model.result_for(run)
    assert result is not None and result.get("is_error")
    assert "all tests pass" not in result_text(result)
    assert f"denied by rule 1: {RULE}" in result_text(result)
    [decision] = decisions(deck)
    assert decision["by"] == "rule 1" and decision["detail"].startswith("deny")
    until_sync(lambda: all(t["blocked_on"] is None for t in deck.tasks()), timeout=WAIT,
               what="no question left open")
