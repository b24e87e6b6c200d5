"""The real Codex (0.171.0), offline against a fake Responses API, with taskdeck as its approver.

`codex exec --approve-for-me` is the cheapest mode that asks: a call that wants to leave the
sandbox fires the PermissionRequest hook, and only a hook with no verdict passes it on to
Codex's own automatic review (which our fake model cannot pass: it fails closed). Plain
`codex exec` never asks. The hooks are the ones `taskdeck integrate codex` writes and trusts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.cli import main as taskdeck
from tests.agent_binaries import CODEX, installed
from tests.bridges.conftest import HookDeck
from tests.fakes.openai_responses import FakeResponses, Turn, say, shell
from tests.support import until_sync

OUTSIDE = "needs to write outside the project"
PROMPT = "tidy the build"


@dataclass
class Run:
    """One Codex session and where it works."""

    deck: HookDeck
    model: FakeResponses
    home: Path
    project: Path
    marker: Path
    """The file the escalated command creates: there only if it ran."""

    def start(self) -> subprocess.Popen[str]:
        env = {**self.deck.env, **self.model.env(self.home)}
        return subprocess.Popen(
            [str(installed(CODEX)), "exec", "--approve-for-me", "--skip-git-repo-check",
             PROMPT],
            cwd=self.project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def finish(self, codex: subprocess.Popen[str]) -> str:
        out, err = codex.communicate(timeout=25)
        assert codex.returncode == 0, err[-2000:]
        return out

    def answered(self, *answer: str) -> dict:
        """Run the session, answer its question with `taskdeck answer ID ANSWER...`; the
        question's task as it was asked."""
        codex = self.start()
        task = self.asking()
        assert self.deck.run("answer", str(task["id"]), *answer).returncode == 0
        self.finish(codex)
        return task

    def roots(self) -> list[dict]:
        return [t for t in self.deck.tasks() if t["agent"] == "codex" and t["parent_id"] is None]

    def asking(self) -> dict:
        """The Codex session's task once it waits on a question."""
        until_sync(lambda: any(t["blocked_on"] for t in self.roots()), timeout=20,
                   what="Codex's question in taskdeck")
        return next(t for t in self.roots() if t["blocked_on"])


@pytest.fixture
def codex_run(tmp_path: Path) -> Iterator[Run]:
    """A daemon, a fake model, and a CODEX_HOME with taskdeck's hooks integrated and trusted."""
    installed(CODEX)
    home, project = tmp_path / "codex", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    marker = tmp_path / "outside" / "ran"
    marker.parent.mkdir()
    deck = HookDeck(tmp_path)
    with FakeResponses() as model:
        (home / "config.toml").write_text(model.config(project))
        assert taskdeck(["integrate", "codex", "--codex-home", str(home),
                         "--runtime-dir", str(deck.runtime_dir)]) == 0
        deck.serve()
        try:
            yield Run(deck, model, home, project, marker)
        finally:
            deck.stop()


def escalated(run: Run) -> Turn:
    return shell(f"touch {run.marker}", escalate=OUTSIDE)


@pytest.mark.timeout(60)
def test_approved_in_taskdeck_the_command_runs_and_the_tree_ends_with_the_session(
    codex_run: Run,
) -> None:
    run = codex_run
    run.model.script += [escalated(run), say("done")]
    task = run.answered("approve")
    assert task["progress"] == f"prompt: {PROMPT}"  # UserPromptSubmit
    asked = task["blocked_on"]
    assert asked["question"] == f"Codex asks to run Bash: touch {run.marker} (because: {OUTSIDE})"
    assert run.marker.exists()
    assert run.model.overrun == 0  # no automatic review was needed
    [root] = run.roots()
    assert root["key"].startswith("codex:")
    assert (root["status"], root["result"]) == ("finished", "other")  # SessionEnd


@pytest.mark.timeout(60)
def test_denied_in_taskdeck_the_command_does_not_run_and_the_model_reads_why(
    codex_run: Run,
) -> None:
    run = codex_run
    run.model.script += [escalated(run), say("understood")]
    run.answered("deny", "--reason", "not outside the project")
    assert not run.marker.exists()
    [output] = run.model.outputs()
    assert "not outside the project" in output


@pytest.mark.timeout(60)
def test_abort_denies_the_question_and_every_later_call(codex_run: Run) -> None:
    run = codex_run
    later = run.marker.with_name("later")
    run.model.script += [escalated(run), shell(f"touch {later}", escalate=OUTSIDE), say("stopped")]
    codex = run.start()
    task = run.asking()
    assert run.deck.run("abort", str(task["id"])).returncode == 0
    run.finish(codex)
    assert not run.marker.exists() and not later.exists()
    first, second = run.model.outputs()
    assert "aborted in taskdeck by " in first
    assert "aborted in taskdeck by " in second  # denied at PreToolUse, before any question
    [root] = run.roots()
    assert root["end_reason"] == "aborted"


@pytest.mark.timeout(60)
def test_with_the_daemon_down_codex_decides_itself_and_nothing_is_allowed(
    codex_run: Run,
) -> None:
    run = codex_run
    run.deck.stop()
    run.model.script += [escalated(run)]
    run.finish(run.start())
    assert not run.marker.exists()
    # The hook gave no verdict: the call went on to Codex's own automatic review, which the
    # fake model fails (it answers the review with the end of its script), so it was refused.
    assert run.model.overrun >= 1
    [output] = run.model.outputs()
    assert "automatic approval review" in output.lower()
