"""The `taskdeck` command end to end: a real daemon process, real commands in other processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.cli import LS_HEADER, _ls_line, main
from core.model import Task, TaskStatus
from tests.cli.conftest import Deck, one_line_error, usage_error
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)


def test_ask_prints_the_answer_and_exits_0_on_approve(deck: Deck) -> None:
    asker = deck.start("ask", "Deploy?")
    task = deck.blocked_task("Deploy?")
    assert task["blocked_on"]["choices"] == ["approve", "deny"]
    answered = deck.run("answer", str(task["id"]), "approve")
    assert answered.returncode == 0, answered.stderr
    out, err = asker.communicate(timeout=15)
    assert asker.returncode == 0, err
    assert out.strip() == "approve"
    [done] = [t for t in deck.tasks() if t["id"] == task["id"]]
    assert done["status"] == "finished"


def test_ask_exits_1_on_deny_and_shows_the_reason(deck: Deck) -> None:
    asker = deck.start("ask", "Drop the table?")
    task = deck.blocked_task("Drop the table?")
    deck.run("answer", str(task["id"]), "deny", "--reason", "not on a Friday")
    out, err = asker.communicate(timeout=15)
    assert asker.returncode == 1
    assert out.strip() == "deny"
    assert "not on a Friday" in err


def test_ask_with_choices_takes_free_text_as_a_reply_not_an_approval(deck: Deck) -> None:
    asker = deck.start("ask", "Which region?", "--choices", "eu,us")
    task = deck.blocked_task("Which region?")
    assert task["blocked_on"]["choices"] == ["eu", "us"]
    deck.run("answer", str(task["id"]), "ap-southeast, please")
    out, _ = asker.communicate(timeout=15)
    assert asker.returncode == 3
    assert out.strip() == "ap-southeast, please"
    [done] = [t for t in deck.tasks() if t["id"] == task["id"]]
    assert (done["status"], done["result"]) == ("finished", "replied: ap-southeast, please")


def test_ask_exits_2_on_timeout(deck: Deck) -> None:
    result = deck.run("ask", "Anyone there?", "--timeout", "0.3")
    assert result.returncode == 2
    hint, error = result.stderr.strip().splitlines()
    assert hint.startswith("taskdeck: asked as task ")
    assert error.startswith("taskdeck: no answer within 0.3s")


def test_ask_exits_2_when_aborted(deck: Deck) -> None:
    asker = deck.start("ask", "Proceed?")
    task = deck.blocked_task("Proceed?")
    aborted = deck.run("abort", str(task["id"]))
    assert aborted.returncode == 0
    assert f"aborted 1 task: {task['id']}" in aborted.stdout
    _, err = asker.communicate(timeout=15)
    assert asker.returncode == 2
    # one line that says nothing was approved, and who aborted
    assert err.strip().splitlines()[-1].startswith("taskdeck: nothing was approved: "), err
    assert "aborted by cli:" in err


def test_a_second_answer_is_refused_with_one_line(deck: Deck) -> None:
    asker = deck.start("ask", "Ship it?")
    task = deck.blocked_task("Ship it?")
    prompt_id = task["blocked_on"]["prompt_id"]
    assert deck.run("answer", str(task["id"]), "approve", "--prompt", str(prompt_id)).returncode == 0
    asker.communicate(timeout=15)
    again = deck.run("answer", str(task["id"]), "deny", "--prompt", str(prompt_id))
    assert again.returncode == 2
    assert "already answered" in one_line_error(again)
    elsewhere = deck.run("answer", "999", "deny", "--prompt", str(prompt_id))
    assert elsewhere.returncode == 2 and "999" in one_line_error(elsewhere)


def test_ls_json_has_the_contract_fields(deck: Deck) -> None:
    asker = deck.start("ask", "Rotate keys?", "--choices", "yes,no")
    task = deck.blocked_task("Rotate keys?")
    for field in (
        "id", "parent_id", "agent", "status", "description", "result", "error",
        "created_by", "prompt_tokens", "completion_tokens", "blocked_on",
    ):  # fmt: skip
        assert field in task, field
    assert task["status"] == "blocked"
    assert set(task["blocked_on"]) >= {"prompt_id", "question", "choices"}
    deck.run("abort", str(task["id"]))
    asker.communicate(timeout=15)


def test_submit_then_abort_stops_the_subtree(deck: Deck) -> None:
    submitted = deck.run("submit", "shell", "sleep 30")
    assert submitted.returncode == 0, submitted.stderr
    task_id = int(submitted.stdout.split()[0])
    child = deck.run("submit", "shell", "sleep 31", "--parent", str(task_id))
    child_id = int(child.stdout.split()[0])
    deck.blocked_task("sleep 30")
    deck.run("answer", str(task_id), "approve")
    until_sync(
        lambda: next(t for t in deck.tasks() if t["id"] == task_id)["status"] == "in_progress",
        timeout=10,
    )
    aborted = deck.run("abort", str(task_id))
    assert aborted.returncode == 0
    assert aborted.stdout.strip() == f"aborted 2 tasks: {task_id} {child_id}"
    ended = {t["id"]: t for t in deck.tasks()}
    assert ended[task_id]["status"] == ended[child_id]["status"] == "failed"
    assert ended[task_id]["end_reason"] == "aborted"


def test_ls_lists_newest_first_with_blocked_question(deck: Deck) -> None:
    deck.run("submit", "shell", "true")
    deck.run("submit", "shell", "echo hi")
    deck.blocked_task("echo hi")
    result = deck.run("ls")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "PARENT"]
    assert "echo hi" in lines[1] and "true" in lines[3]
    assert "? Run `echo hi`?" in lines[2]


def test_unknown_task_and_bad_filter_are_one_line_errors(deck: Deck) -> None:
    result = deck.run("answer", "999", "approve")
    assert result.returncode == 2
    assert "999" in one_line_error(result)
    result = deck.run("ls", "--status", "sleeping")
    assert "'sleeping'" in usage_error(result)
    assert deck.run("submit", "no-such-agent", "x").returncode == 2


def test_watch_prints_changes_as_they_happen(deck: Deck) -> None:
    watcher = deck.start("watch")
    try:
        deck.run("submit", "shell", "echo watched")
        lines: list[str] = []

        def saw_it() -> bool:
            line = watcher.stdout.readline()
            lines.append(line)
            return "echo watched" in line and "blocked" in line

        until_sync(saw_it, timeout=15, what="watch to print the blocked task")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def test_commands_without_a_daemon_fail_with_one_line(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    result = deck.run("ls")
    assert result.returncode == 2
    assert "no daemon" in one_line_error(result)


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    deck.serve()
    assert (deck.runtime_dir / "daemon.json").exists()
    deck.process.send_signal(signal.SIGTERM)
    assert deck.process.wait(timeout=10) == 0
    assert not (deck.runtime_dir / "daemon.json").exists()
    assert "Traceback" not in deck.process.stdout.read()


def test_headless_demo_runs_the_workload_and_answers_prompts(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    result = deck.run("demo", "--headless", "--seconds", "3", "--speed", "40", timeout=40)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("demo: ")
    answered = int(summary.split(" prompts answered")[0].rsplit(" ", 1)[1])
    assert answered > 0
    assert " finished" in summary and "tokens" in summary
    assert "taskdeck tui --runtime-dir" in result.stderr
    as_json = deck.run("demo", "--headless", "--seconds", "1", "--speed", "40", "--json")
    summary = json.loads(as_json.stdout)
    assert summary["tasks"] == sum(summary["by_status"].values()) > 0


def test_history_shows_who_decided_from_the_daemon_and_from_its_journal(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    journal = tmp_path / "journal.sqlite3"
    deck.serve("--journal", str(journal))
    try:
        asker = deck.start("ask", "Deploy?")
        task = deck.blocked_task("Deploy?")
        deck.run("answer", str(task["id"]), "deny", "--reason", "frozen")
        asker.communicate(timeout=15)
        live = deck.run("history", "--json")
        assert live.returncode == 0, live.stderr
        [decision] = json.loads(live.stdout)
        assert decision["action"] == "answer" and decision["task_id"] == task["id"]
        assert "deny" in decision["detail"] and "frozen" in decision["detail"]
        assert decision["by"].startswith("cli:")
    finally:
        deck.stop()
    offline = deck.run("history", "--journal", str(journal))
    assert offline.returncode == 0, offline.stderr
    assert f"answer  task {task['id']}" in offline.stdout and "deny" in offline.stdout
    missing = deck.run("history", "--journal", str(tmp_path / "nope.sqlite3"))
    assert missing.returncode == 2 and "no journal" in one_line_error(missing)


def test_a_demo_daemon_stops_when_its_parent_dies(tmp_path: Path) -> None:
    """`taskdeck demo` starts its daemon with --parent-pid: closing the terminal must not orphan it."""
    deck = Deck(tmp_path)
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, subprocess, sys; "
                "p = subprocess.Popen([sys.executable, '-m', 'core.cli', 'serve', '--no-journal', "
                "'--parent-pid', str(os.getpid())]); print(p.pid, flush=True); p.wait()"
            ),
        ],
        env=deck.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    daemon_pid = int(starter.stdout.readline())
    connection = deck.runtime_dir / "daemon.json"
    until_sync(connection.exists, timeout=15, what="the daemon to start")
    starter.kill()
    starter.wait(timeout=5)
    until_sync(lambda: not connection.exists(), timeout=15, what="the orphaned daemon to stop")

    def gone() -> bool:
        try:
            state = Path(f"/proc/{daemon_pid}/stat").read_text().split(") ", 1)[1][0]
        except (FileNotFoundError, IndexError):
            return True
        return state == "Z"  # exited, waiting for init to reap it

    until_sync(gone, timeout=15, what="the daemon process to exit")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["ls", "--limit", "-1"], ["--limit", "negative"]),
        (["ls", "--limit", "ten"], ["--limit", "'ten'"]),
        (["history", "--limit", "-1"], ["--limit", "negative"]),
        (["ls", "--limit", "10001"], ["--limit", "at most 10000"]),
        (["abort", "abc"], ["TASK_ID", "'abc'"]),
        (["submit"], ["required", "agent"]),
        (["serve", "--retain", "-5"], ["--retain", "negative"]),
        (["nosuchcmd"], ["'nosuchcmd'"]),
    ],
)
def test_usage_mistakes_are_one_line_naming_the_argument(
    argv: list[str], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse would print the whole usage block too; one line, then `--help`, is the contract."""
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--runtime-dir", str(tmp_path)] if argv[0] != "nosuchcmd" else argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("taskdeck") and line.endswith("--help)")
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--task-timeout", "-1", "--no-journal"], "--task-timeout must not be negative"),
        (["ask", "  "], "the question must not be empty"),
    ],
)
def test_bad_values_are_refused_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No daemon runs here: the value is checked before a daemon starts or is contacted."""
    assert main([*argv, "--runtime-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"taskdeck: {message}")
    assert list(tmp_path.iterdir()) == []


def test_ls_columns_line_up_for_every_status() -> None:
    """`in_progress` is the longest status; it must not push the agent column right."""
    agent_column = LS_HEADER.index("AGENT")
    for status in TaskStatus:
        line = _ls_line(Task(id=7, agent="shell", description="x", status=status))
        assert line.index("shell") == agent_column, status


def test_ask_with_refused_choices_ends_the_task_it_opened(deck: Deck) -> None:
    """The task `ask` opens must not stay in progress (until its lease lapses) after a refusal."""
    result = deck.run("ask", "Pick?", "--choices", "yes,YES")
    assert result.returncode == 2
    assert "distinct" in one_line_error(result)
    [task] = deck.tasks()
    assert task["status"] == "failed" and "distinct" in task["error"]


def test_answering_an_ended_task_says_so_in_plain_words(deck: Deck) -> None:
    result = deck.run("ask", "Gone?", "--timeout", "0.2")
    assert result.returncode == 2
    [task] = [t for t in deck.tasks() if t["description"] == "Gone?"]
    answered = deck.run("answer", str(task["id"]), "approve")
    assert answered.returncode == 2
    assert "has ended (failed); there is no question to answer" in one_line_error(answered)
    too_many = deck.run("history", "--limit", "20000")
    assert too_many.returncode == 2 and "--journal" in one_line_error(too_many)
