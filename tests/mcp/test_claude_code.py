"""The real Claude Code binary with `--permission-prompt-tool mcp__taskdeck__permission_prompt`
pointing at `taskdeck mcp`: a person's approve and deny in taskdeck reach it.

Claude Code runs offline (`-p`) against the scripted fake Messages API, starts this
checkout's `taskdeck mcp` from an `--mcp-config` file, and calls its permission prompt
tool for every tool call that needs a decision. Answers go through the real `taskdeck
answer`; what the model received is read back from the fake's record of requests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.cli.conftest import TASKDECK
from tests.e2e.conftest import WAIT, AgentDeck, printed_result
from tests.fakes.anthropic import FakeAnthropic, bash, result_text, text
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)

TOOL = "mcp__taskdeck__permission_prompt"

MCP_CONNECT_WAIT = "MCP_CONNECT_TIMEOUT_MS"
"""How long Claude Code waits for an `alwaysLoad` server (5 s by default): raised, as a
busy machine can take longer to import the SDK (docs/BENCHMARKS.md); start-up speed is
measured in bench/, not asserted here."""


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_mcp_json() -> str:
    [config] = [block for block in re.findall(r"```json\n(.*?)```", README.read_text(),
                                              flags=re.DOTALL) if "mcpServers" in block]
    assert json.loads(config)["mcpServers"]["taskdeck"]["args"] == ["mcp"]
    return config


class ClaudeDeck(AgentDeck):
    """A daemon, a fake model and a place for one `claude -p` run with taskdeck as approver."""

    def __init__(self, tmp: Path, binary: Path, model: FakeAnthropic) -> None:
        super().__init__(tmp)
        self.binary = binary
        self.model = model
        self.home, self.work = tmp / "home", tmp / "work"
        self.home.mkdir()
        self.work.mkdir()
        self.path = os.pathsep.join([str(Path(TASKDECK).parent), os.environ.get("PATH", "")])

    def mcp_config(self) -> Path:
        """The README's `.mcp.json`, as written: `taskdeck` is found on PATH (this checkout's)."""
        path = self.home / "mcp.json"
        path.write_text(readme_mcp_json())
        return path

    def start(self, prompt: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.binary), "-p", prompt, "--output-format", "json",
             "--mcp-config", str(self.mcp_config()), "--strict-mcp-config",
             "--permission-prompt-tool", TOOL],
            cwd=self.work, env={**self.env, **self.model.env(self.home), "PATH": self.path,
                                MCP_CONNECT_WAIT: "30000"},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def done(self, process: subprocess.Popen[str]) -> dict:
        return printed_result(process)

    def session_asking(self, process: subprocess.Popen[str]) -> dict:
        """Wait until Claude Code's session asks; fail with its output if it ended first."""
        found: list[dict] = []

        def asking() -> bool:
            found[:] = [t for t in self.tasks() if t["agent"] == "claude-code" and t["blocked_on"]]
            return bool(found) or process.poll() is not None

        until_sync(asking, timeout=WAIT, what="Claude Code's session to ask")
        if not found:
            out, err = process.communicate()
            raise AssertionError(f"claude ended without asking (exit {process.returncode}): "
                                 f"{out[-2000:]} {err[-2000:]}")
        return found[0]


@pytest.fixture(scope="session")
def claude_binary() -> Path:
    return installed(CLAUDE_CODE)


@pytest.fixture
def deck(tmp_path: Path, claude_binary: Path) -> Iterator[ClaudeDeck]:
    with FakeAnthropic() as model, ClaudeDeck(tmp_path, claude_binary, model).running() as deck:
        yield deck


def test_approved_in_taskdeck_the_command_runs(deck: ClaudeDeck) -> None:
    touch = bash("touch approved.txt", "Create approved.txt")
    deck.model.add(touch, text("created it"))
    process = deck.start("create approved.txt")
    asking = deck.session_asking(process)
    assert asking["blocked_on"]["summary"] == "touch approved.txt"
    [prompt] = deck.prompts(asking["id"])
    assert prompt["action"]["tool"] == "Bash"
    assert prompt["action"]["input"]["command"] == "touch approved.txt"
    assert not (deck.work / "approved.txt").exists()  # it waits for the person

    deck.answer(asking, "approve")
    outcome = deck.done(process)
    assert outcome["result"] == "created it"
    assert (deck.work / "approved.txt").exists()
    result = deck.model.result_for(touch)
    assert result is not None and not result.get("is_error")
    assert TOOL not in deck.model.model_calls()[0].tool_names  # not offered to the model
    ended = deck.task(asking["key"], until=lambda t: t["status"] != "in_progress")
    assert ended["status"] == "finished"


def test_denied_in_taskdeck_nothing_runs_and_the_model_reads_the_reason(deck: ClaudeDeck) -> None:
    reason = "not on a Friday: the release freeze holds until Monday 09:00"
    touch = bash("touch denied.txt", "Create denied.txt")
    deck.model.add(touch, text("understood"))
    process = deck.start("create denied.txt")
    asking = deck.session_asking(process)
    deck.answer(asking, "deny", "--reason", reason)
    deck.done(process)
    assert not (deck.work / "denied.txt").exists()
    result = deck.model.result_for(touch)
    assert result is not None and result.get("is_error")
    assert reason in result_text(result)


def test_aborted_in_taskdeck_nothing_runs_and_the_run_stops(deck: ClaudeDeck) -> None:
    touch = bash("touch aborted.txt", "Create aborted.txt")
    deck.model.add(touch, text("carried on regardless"))
    process = deck.start("create aborted.txt")
    asking = deck.session_asking(process)
    deck.ok("abort", str(asking["id"]))
    outcome = deck.done(process)
    assert not (deck.work / "aborted.txt").exists()
    assert outcome["terminal_reason"] == "aborted_tools"  # the deny's interrupt stopped the run
    assert [d["tool_name"] for d in outcome["permission_denials"]] == ["Bash"]
    assert len(deck.model.model_calls()) == 1
    [prompt] = deck.prompts(asking["id"])
    assert prompt["state"] == "cancelled"
    assert deck.task(asking["key"])["end_reason"] == "aborted"
