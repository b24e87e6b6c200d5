"""The real Claude Code binary, offline against a fake model, with taskdeck as its approver.

Each test runs the pinned `claude` (tests/agent_binaries.py) in a fresh working directory
with a private HOME, hooks that run this checkout's `taskdeck hook claude` against a real
daemon, and a scripted fake Messages API (tests/fakes/anthropic.py). A person's answer is
given through the real `taskdeck answer` / `taskdeck abort`; what the model received is read
back from the fake's record of requests.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.agent_binaries import CLAUDE_CODE, installed
from tests.e2e.conftest import WAIT, AgentDeck, Place, Tmux, hook_command, printed_result
from tests.fakes.anthropic import (
    FakeAnthropic,
    Turn,
    agent,
    bash,
    result_text,
    text,
    tool_use,
)
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)

HOOK_SECONDS = 30
"""The hook timeout written into the settings; taskdeck's own wait is shorter."""
DECISION_SECONDS = 25
OBSERVED = ("SessionStart", "UserPromptSubmit", "PostToolUse", "PostToolBatch", "Notification",
            "SubagentStart", "SubagentStop", "Stop", "SessionEnd")


@pytest.fixture(scope="session")
def claude_binary() -> Path:
    """The pinned Claude Code, installed into the test cache on first use."""
    return installed(CLAUDE_CODE)


def settings(*, gate: tuple[str, ...] = ("Bash",), permission: bool = False,
             observe: tuple[str, ...] = OBSERVED, decision: float = DECISION_SECONDS) -> dict:
    """Hook settings as a user writes them: the observed events, plus the deciding ones."""
    def entry(*args: str, timeout: int | None = None) -> list[dict]:
        hook: dict = {"type": "command", "command": hook_command("claude", *args)}
        if timeout is not None:
            hook["timeout"] = timeout
        return [{"matcher": "*", "hooks": [hook]}]

    decide = ("--timeout", f"{decision:g}")
    hooks = {event: entry() for event in observe}
    if gate:
        gates = [arg for tool in gate for arg in ("--gate", tool)]
        hooks["PreToolUse"] = entry(*gates, *decide, timeout=HOOK_SECONDS)
    if permission:
        hooks["PermissionRequest"] = entry(*decide, timeout=HOOK_SECONDS)
    return {"hooks": hooks}


@dataclass
class Claude:
    """One Claude Code session: its fake model, its place, the deck that approves it."""

    binary: Path
    deck: AgentDeck
    place: Place
    model: FakeAnthropic
    session: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def root_key(self) -> str:
        return f"claude:{self.session}"

    def env(self) -> dict[str, str]:
        return {**self.deck.env, **self.model.env(self.place.home)}

    def write_settings(self, **options: object) -> Path:
        path = self.place.home / "taskdeck-settings.json"
        path.write_text(json.dumps(settings(**options)))  # type: ignore[arg-type]
        return path

    def start(self, prompt: str, **options: object) -> subprocess.Popen[str]:
        """`claude -p PROMPT` in the background (its answer: `done`)."""
        return subprocess.Popen(
            [str(self.binary), "-p", prompt, "--output-format", "json",
             "--settings", str(self.write_settings(**options)), "--session-id", self.session],
            cwd=self.place.work, env=self.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def done(self, process: subprocess.Popen[str]) -> dict:
        """Wait for the session to end; its JSON result."""
        return printed_result(process)


@pytest.fixture
def claude(claude_binary: Path, deck: AgentDeck, place: Place) -> Iterator[Claude]:
    """A Claude Code session waiting to be started; its fake model serves while the test runs."""
    with FakeAnthropic() as model:
        session = Claude(claude_binary, deck, place, model)
        yield session


def run_once(claude: Claude, *turns: Turn, prompt: str = "do the task",
             **options: object) -> subprocess.Popen[str]:
    claude.model.add(*turns)
    return claude.start(prompt, **options)


def test_approved_in_taskdeck_the_command_runs(claude: Claude) -> None:
    touch = bash("touch approved.txt", "Create approved.txt")
    process = run_once(claude, touch, text("created it"), prompt="create approved.txt")
    asking = claude.deck.asking(claude.root_key)
    assert asking["agent"] == "claude"
    assert asking["description"] == f"{claude.place.work}: create approved.txt"
    assert asking["blocked_on"]["summary"] == "touch approved.txt"
    [prompt] = claude.deck.prompts(asking["id"])
    assert prompt["action"]["tool"] == "Bash"
    assert prompt["action"]["input"]["command"] == "touch approved.txt"
    assert prompt["action"]["session"] == claude.session
    assert not (claude.place.work / "approved.txt").exists()  # it waits for the person

    claude.deck.answer(asking, "approve")
    outcome = claude.done(process)
    assert outcome["result"] == "created it"
    assert (claude.place.work / "approved.txt").exists()
    result = claude.model.result_for(touch)
    assert result is not None and not result.get("is_error")


def test_denied_with_a_reason_nothing_runs_and_the_model_reads_the_reason(claude: Claude) -> None:
    reason = "not on a Friday: the release freeze holds until Monday 09:00"
    delete = bash("touch denied.txt", "Create denied.txt")
    process = run_once(claude, delete, text("understood"))
    asking = claude.deck.asking(claude.root_key)
    claude.deck.answer(asking, "deny", "--reason", reason)
    claude.done(process)
    assert not (claude.place.work / "denied.txt").exists()
    result = claude.model.result_for(delete)
    assert result is not None and result.get("is_error") is True
    assert result_text(result) == reason  # verbatim, nothing added
    [prompt] = claude.deck.prompts(asking["id"])
    assert (prompt["state"], prompt["answer"], prompt["reason"]) == ("answered", "deny", reason)


def test_a_free_text_reply_reaches_the_model_instead_of_the_command(claude: Claude) -> None:
    guidance = "use `make check` instead, it also runs the linters"
    tests = bash("touch replied.txt", "Run the tests")
    process = run_once(claude, tests, text("will do"))
    asking = claude.deck.asking(claude.root_key)
    claude.deck.answer(asking, guidance)
    claude.done(process)
    assert not (claude.place.work / "replied.txt").exists()
    result = claude.model.result_for(tests)
    assert result is not None
    assert result.get("is_error") is True
    assert result_text(result) == guidance


def test_a_sub_agents_call_is_asked_under_its_child_task(claude: Claude) -> None:
    inner = bash("touch from-sub-agent.txt", "Create the file")
    process = run_once(claude, agent("create from-sub-agent.txt", "Create a file"), inner,
                       text("the sub-agent made it"), text("all done"))
    asking = claude.deck.task(
        claude.root_key, what="to have a sub-agent asking",
        until=lambda root: any(t["parent_id"] == root["id"] and t["blocked_on"]
                               for t in claude.deck.tasks()))
    [child] = [t for t in claude.deck.tasks() if t["parent_id"] == asking["id"]]
    assert child["key"].startswith(claude.root_key + "/")
    assert child["agent"] == "claude"
    assert child["description"].startswith("general-purpose ")
    assert asking["blocked_on"] is None  # the question is the sub-agent's, not the session's
    assert child["blocked_on"]["summary"] == "touch from-sub-agent.txt"

    claude.deck.answer(child, "approve")
    assert claude.done(process)["result"] == "all done"
    assert (claude.place.work / "from-sub-agent.txt").exists()
    ended = claude.deck.ended(child["key"])
    assert (ended["status"], ended["result"]) == ("finished", "the sub-agent made it")


def test_a_file_write_is_asked_with_its_path_and_content_and_runs_once_approved(
    claude: Claude,
) -> None:
    target = claude.place.work / "src" / "total.ts"
    content = "export const total = (sum: number, tax: number) => round(sum + tax);\n"
    write = tool_use("Write", {"file_path": str(target), "content": content})
    process = run_once(claude, write, text("wrote it"), gate=("Bash", "Write"))
    asking = claude.deck.asking(claude.root_key)
    [prompt] = claude.deck.prompts(asking["id"])
    assert prompt["action"]["tool"] == "Write"
    assert prompt["action"]["input"] == {"file_path": str(target), "content": content}
    assert not target.exists()

    claude.deck.answer(asking, "approve")
    assert claude.done(process)["result"] == "wrote it"
    assert target.read_text() == content


def test_the_tree_ends_when_the_session_ends(claude: Claude) -> None:
    process = run_once(claude, bash("echo hello", "Say hello"), text("said hello"),
                       prompt="say hello")
    claude.deck.answer(claude.deck.asking(claude.root_key), "approve")
    claude.done(process)
    root = claude.deck.ended(claude.root_key)
    assert root["status"] == "finished"
    assert root["result"] == "other"  # SessionEnd's reason in `-p`
    assert [t for t in claude.deck.tasks() if t["status"] not in ("finished", "failed")] == []


def test_abort_in_taskdeck_stops_the_session(claude: Claude) -> None:
    risky = bash("touch aborted.txt", "Create aborted.txt")
    process = run_once(claude, risky, text("should never be asked for"))
    asking = claude.deck.asking(claude.root_key)
    claude.deck.ok("abort", str(asking["id"]))
    outcome = claude.done(process)
    assert not (claude.place.work / "aborted.txt").exists()
    assert claude.model.served == 1, "the session asked the model again after the abort"
    assert outcome["terminal_reason"] == "hook_stopped"  # `continue: false` from the hook
    assert [d["tool_use_id"] for d in outcome["permission_denials"]] == [risky.blocks[0].id]
    root = claude.deck.by_key(claude.root_key)[0]
    assert (root["status"], root["end_reason"]) == ("failed", "aborted")
    [prompt] = claude.deck.prompts(root["id"])
    assert prompt["state"] == "cancelled"


def test_nobody_answers_in_time_a_gated_call_is_denied_before_the_hook_times_out(
    claude: Claude,
) -> None:
    """taskdeck waits 2 s (its `--timeout`), well inside the hook's own 30: then the
    question closes as timed out and the model reads a deny that says so."""
    slow = bash("touch unanswered.txt", "Create unanswered.txt")
    process = run_once(claude, slow, text("nobody answered"), decision=2)
    asking = claude.deck.asking(claude.root_key)
    claude.done(process)
    assert not (claude.place.work / "unanswered.txt").exists()
    [prompt] = claude.deck.prompts(asking["id"])
    assert prompt["state"] == "timed_out"
    result = claude.model.result_for(slow)
    assert result is not None and result.get("is_error") is True
    said = result_text(result)
    assert said.startswith("taskdeck could not ask a person: ") and "within 2s" in said


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_with_the_daemon_down_a_gated_call_is_denied_naming_the_cause(
    claude: Claude, how: str
) -> None:
    """Stopped: no connection file. Killed: the file is left behind and nothing answers;
    every hook then waits one request timeout (2.5 s) before it gives up, so the killed
    case runs only the gated hook."""
    if how == "stopped":
        claude.deck.stop()
    else:
        assert claude.deck.process is not None
        claude.deck.process.kill()
        claude.deck.process.wait(timeout=10)
        assert (claude.deck.runtime_dir / "daemon.json").exists()
    risky = bash("touch unguarded.txt", "Create unguarded.txt")
    process = run_once(claude, risky, text("could not"),
                       observe=OBSERVED if how == "stopped" else ())
    claude.done(process)
    assert not (claude.place.work / "unguarded.txt").exists()
    result = claude.model.result_for(risky)
    assert result is not None and result.get("is_error") is True
    said = result_text(result)
    assert said.startswith("taskdeck could not ask a person: ")
    assert "daemon" in said


# ------------------------------------------------------------------ the interactive UI

DIALOG = "Do you want to proceed?"


def interactive(claude: Claude, tmux: Tmux, prompt: str) -> None:
    """Start Claude Code's own UI in tmux: onboarded, the test's folder trusted, hooks set."""
    (claude.place.home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "projects": {str(claude.place.work.parent): {"hasTrustDialogAccepted": True}},
    }))
    path = claude.write_settings(gate=(), permission=True)
    tmux.start([str(claude.binary), "--settings", str(path), "--session-id", claude.session,
                prompt], env=claude.env(), cwd=claude.place.work)


def dialog(claude: Claude, tmux: Tmux, name: str, then: str) -> Turn:
    """Start the UI with a model that asks to `touch NAME` (then says `then`); wait until
    Claude Code shows its permission dialog. Returns the tool call's turn."""
    touch = bash(f"touch {name}", f"Create {name}")
    claude.model.add(touch, text(then))
    interactive(claude, tmux, f"create {name}")
    tmux.shows(DIALOG, f"touch {name}")
    return touch


def quit_ui(tmux: Tmux) -> None:
    """Leave the UI with /exit, as a person does."""
    tmux.send("/exit", literal=True)
    tmux.send("Enter")
    until_sync(tmux.exited, timeout=WAIT, what="Claude Code to exit")


def test_the_ui_permission_dialog_is_answered_from_taskdeck(claude: Claude, tmux: Tmux) -> None:
    touch = dialog(claude, tmux, "from-the-ui.txt", "made it in the UI")
    asking = claude.deck.asking(claude.root_key)
    [prompt] = claude.deck.prompts(asking["id"])
    assert prompt["action"]["tool"] == "Bash"
    assert prompt["action"]["input"]["command"] == "touch from-the-ui.txt"

    claude.deck.answer(asking, "approve")
    until_sync((claude.place.work / "from-the-ui.txt").exists, timeout=WAIT,
               what="the approved command to run")
    screen = tmux.shows("made it in the UI")
    assert DIALOG not in screen  # the hook's answer closed Claude Code's own dialog
    result = claude.model.result_for(touch)
    assert result is not None and not result.get("is_error")
    quit_ui(tmux)
    root = claude.deck.ended(claude.root_key)
    assert (root["status"], root["result"]) == ("finished", "prompt_input_exit")


def test_a_deny_from_taskdeck_closes_the_ui_dialog_and_the_model_reads_why(
    claude: Claude, tmux: Tmux
) -> None:
    reason = "wrong folder: build in ./out, not in the checkout"
    touch = dialog(claude, tmux, "denied-in-ui.txt", "I will use ./out")
    claude.deck.answer(claude.deck.asking(claude.root_key), "deny", "--reason", reason)
    screen = tmux.shows("I will use ./out")
    assert DIALOG not in screen
    assert not (claude.place.work / "denied-in-ui.txt").exists()
    result = claude.model.result_for(touch)
    assert result is not None and result.get("is_error") is True
    assert result_text(result) == reason  # verbatim, nothing added
    quit_ui(tmux)


def test_abort_in_taskdeck_stops_the_ui_session(claude: Claude, tmux: Tmux) -> None:
    dialog(claude, tmux, "aborted-in-ui.txt", "should never be asked for")
    asking = claude.deck.asking(claude.root_key)
    claude.deck.ok("abort", str(asking["id"]))
    assert DIALOG not in tmux.shows("Interrupted")  # the deny's `interrupt` stopped the turn
    assert not (claude.place.work / "aborted-in-ui.txt").exists()
    root = claude.deck.by_key(claude.root_key)[0]
    assert (root["status"], root["end_reason"]) == ("failed", "aborted")
    # A later prompt in the same session is stopped by its hook before the model sees it.
    tmux.send("try again", literal=True)
    tmux.send("Enter")
    tmux.shows("Operation stopped by hook: aborted in taskdeck by ")
    assert claude.model.served == 1, "the session asked the model again after the abort"
    quit_ui(tmux)


def test_dismissing_claude_codes_dialog_closes_the_taskdeck_question(
    claude: Claude, tmux: Tmux
) -> None:
    """Esc in Claude Code's dialog rejects the call and ends the hook (Claude Code sends it
    SIGTERM): the question leaves taskdeck's inbox at once, nobody can approve it later."""
    dialog(claude, tmux, "dismissed.txt", "should never be asked for")
    claude.deck.asking(claude.root_key)
    tmux.send("Escape")
    tmux.shows("Interrupted")
    root = claude.deck.task(claude.root_key, until=lambda t: t["blocked_on"] is None,
                            what="to stop asking")
    [prompt] = claude.deck.prompts(root["id"])
    assert prompt["state"] != "pending"
    assert prompt["answer"] != "approve"
    late = claude.deck.run("answer", str(root["id"]), "approve", "--prompt", str(prompt["id"]))
    assert late.returncode != 0
    quit_ui(tmux)
    assert not (claude.place.work / "dismissed.txt").exists()


def test_with_the_daemon_down_the_ui_dialog_asks_the_person(claude: Claude, tmux: Tmux) -> None:
    """A PermissionRequest with no daemon gives no verdict: Claude Code's own dialog asks."""
    claude.deck.stop()
    dialog(claude, tmux, "asked-in-ui.txt", "the dialog asked instead")
    assert not (claude.place.work / "asked-in-ui.txt").exists()  # neither allowed ...
    tmux.send("Enter")  # ... nor denied: the person says yes in the dialog
    until_sync((claude.place.work / "asked-in-ui.txt").exists, timeout=WAIT,
               what="the command the person allowed in the UI to run")
    tmux.shows("the dialog asked instead")
    quit_ui(tmux)


def test_answered_in_the_agents_own_dialog_first_the_taskdeck_prompt_closes(
    claude: Claude, tmux: Tmux
) -> None:
    """Claude Code keeps its dialog up while the PermissionRequest hook waits; a person who
    answers there first wins, and the hook's later answer is ignored. The taskdeck question
    must not stay pending: it closes as answered in the agent, at the latest with the
    session's next hook event (here PostToolUse of the allowed call, then Stop)."""
    dialog(claude, tmux, "answered-in-ui.txt", "the person said yes in the UI")
    claude.deck.asking(claude.root_key)  # taskdeck asks too

    tmux.send("Enter")  # "1. Yes", in Claude Code's own dialog
    until_sync((claude.place.work / "answered-in-ui.txt").exists, timeout=WAIT,
               what="the command the person allowed in the UI to run")
    tmux.shows("the person said yes in the UI")
    # By now the session sent its next events (PostToolUse, Stop): the question is closed.
    root = claude.deck.task(claude.root_key, until=lambda t: t["blocked_on"] is None,
                            what="to stop asking")
    [prompt] = claude.deck.prompts(root["id"])
    assert prompt["state"] != "pending"
    assert "answered in the agent" in json.dumps(prompt)
    late = claude.deck.run("answer", str(root["id"]), "approve", "--prompt", str(prompt["id"]))
    assert late.returncode != 0  # nobody answers a question the agent no longer asks
    quit_ui(tmux)

