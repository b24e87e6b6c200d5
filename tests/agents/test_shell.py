"""The shell agent: approval first, output tail in the result, and no process outlives its task."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from core.agents.shell import _group_alive, make_shell_agent
from core.client import Client
from core.errors import BadRequest
from core.model import EndReason, TaskStatus
from core.registry import Registry
from core.runtime import connection_path
from tests.agents.conftest import ended, next_prompt
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]


def group_gone(pgid: int) -> bool:
    """True when no process (not even an unreaped zombie) is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


async def start_approved(registry: Registry, command: str, **kwargs: object) -> int:
    """Submit `command` to the shell agent, check its question, approve it."""
    sub = registry.subscribe()
    try:
        task = registry.submit("shell", command, **kwargs)  # type: ignore[arg-type]
        prompt = await next_prompt(sub, task.id)
    finally:
        sub.close()
    assert prompt.question == f"Run `{command}`?"
    assert prompt.choices == ["approve", "deny"]
    registry.answer(prompt.id, "approve", by="alice")
    return task.id


async def pgid_of(registry: Registry, task_id: int) -> int:
    """The group id the command printed first (`echo $$`), read from the task's progress."""
    await until(
        lambda: (registry.get(task_id).progress or "").isdigit(), what="the command's pid"
    )
    return int(registry.get(task_id).progress or "")


async def test_approved_command_finishes_with_exit_code_and_output_tail(
    registry: Registry,
) -> None:
    registry.register_agent("shell", make_shell_agent(tail_lines=3))
    task_id = await start_approved(registry, "seq 1 10; echo 'to stderr' >&2")

    task = await ended(registry, task_id)

    assert task.status is TaskStatus.FINISHED
    assert task.result == "exit 0\n9\n10\nto stderr"


async def test_denied_command_fails_and_never_runs(registry: Registry, tmp_path: Path) -> None:
    registry.register_agent("shell", make_shell_agent())
    marker = tmp_path / "ran"
    sub = registry.subscribe()
    task = registry.submit("shell", f"touch {shlex.quote(str(marker))}")
    prompt = await next_prompt(sub, task.id)

    registry.answer(prompt.id, "deny", by="bob", reason="not on prod")

    done = await ended(registry, task.id)
    assert done.status is TaskStatus.FAILED
    assert done.end_reason is EndReason.ERROR
    assert done.error == "CommandDenied: denied by bob: not on prod"
    assert not marker.exists()


async def test_free_text_answer_is_not_an_approval(registry: Registry, tmp_path: Path) -> None:
    registry.register_agent("shell", make_shell_agent())
    marker = tmp_path / "ran"
    sub = registry.subscribe()
    task = registry.submit("shell", f"touch {shlex.quote(str(marker))}")
    prompt = await next_prompt(sub, task.id)

    registry.answer(prompt.id, "use --dry-run first")

    done = await ended(registry, task.id)
    assert done.error == "CommandDenied: not approved by user: use --dry-run first"
    assert not marker.exists()


async def test_non_zero_exit_fails_with_code_and_last_line(registry: Registry) -> None:
    registry.register_agent("shell", make_shell_agent())
    task_id = await start_approved(registry, "echo starting; echo 'disk full' >&2; exit 3")

    task = await ended(registry, task_id)

    assert task.status is TaskStatus.FAILED
    assert task.end_reason is EndReason.ERROR
    assert task.error == "CommandFailed: exit 3: disk full"


async def test_progress_shows_the_latest_output_line(registry: Registry) -> None:
    registry.register_agent("shell", make_shell_agent(grace=0.5))
    task_id = await start_approved(registry, "echo 'step 1 of 2: unpacking'; sleep 60")

    await until(lambda: registry.get(task_id).progress == "step 1 of 2: unpacking")

    registry.abort(task_id)
    await ended(registry, task_id)


async def test_abort_kills_the_whole_process_group(registry: Registry) -> None:
    registry.register_agent("shell", make_shell_agent(grace=2.0))
    task_id = await start_approved(registry, "echo $$; sleep 60 & sleep 60")
    pgid = await pgid_of(registry, task_id)
    assert not group_gone(pgid)

    assert registry.abort(task_id, by="alice") == [task_id]

    task = await ended(registry, task_id)
    assert task.status is TaskStatus.FAILED
    assert task.end_reason is EndReason.ABORTED
    # Orphaned members are reaped by init, which may take a moment.
    await until(lambda: group_gone(pgid), what=f"process group {pgid} to vanish")


async def test_abort_sends_term_first_so_the_command_can_clean_up(
    registry: Registry, tmp_path: Path
) -> None:
    registry.register_agent("shell", make_shell_agent(grace=5.0))
    note = tmp_path / "cleanup"
    command = (
        f"trap 'echo cleaned > {shlex.quote(str(note))}; exit 0' TERM; "
        "echo $$; while :; do sleep 0.05; done"
    )
    task_id = await start_approved(registry, command)
    pgid = await pgid_of(registry, task_id)

    started = time.monotonic()
    registry.abort(task_id)
    await ended(registry, task_id)

    assert note.read_text() == "cleaned\n"
    assert time.monotonic() - started < 4.0, "waited for the grace although the group left"
    await until(lambda: group_gone(pgid), what=f"process group {pgid} to vanish")


async def test_abort_kills_a_command_that_ignores_term_after_the_grace(
    registry: Registry,
) -> None:
    registry.register_agent("shell", make_shell_agent(grace=0.2))
    task_id = await start_approved(registry, "trap '' TERM; echo $$; sleep 60")
    pgid = await pgid_of(registry, task_id)

    started = time.monotonic()
    registry.abort(task_id)
    await ended(registry, task_id)

    assert time.monotonic() - started >= 0.2
    await until(lambda: group_gone(pgid), what=f"process group {pgid} to vanish")


async def test_timeout_kills_the_group(registry: Registry) -> None:
    registry.register_agent("shell", make_shell_agent(grace=0.2))
    task_id = await start_approved(registry, "echo $$; sleep 60", timeout=0.5)
    pgid = await pgid_of(registry, task_id)

    task = await ended(registry, task_id)

    assert task.end_reason is EndReason.TIMEOUT
    await until(lambda: group_gone(pgid), what=f"process group {pgid} to vanish")


async def test_background_leftovers_are_stopped_when_the_command_exits(
    registry: Registry,
) -> None:
    registry.register_agent("shell", make_shell_agent(grace=1.0))
    task_id = await start_approved(registry, "echo $$; sleep 60 > /dev/null 2>&1 & echo started")

    task = await ended(registry, task_id)

    assert task.status is TaskStatus.FINISHED
    pid_line, last = task.result.splitlines()[1:]
    assert last == "started"
    await until(lambda: group_gone(int(pid_line)), what="the background sleep to be stopped")


async def test_abort_while_waiting_for_approval_runs_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    registry.register_agent("shell", make_shell_agent())
    marker = tmp_path / "ran"
    sub = registry.subscribe()
    task = registry.submit("shell", f"touch {shlex.quote(str(marker))}")
    await next_prompt(sub, task.id)

    registry.abort(task.id)

    done = await ended(registry, task.id)
    assert done.end_reason is EndReason.ABORTED
    assert not marker.exists()


async def test_closing_the_registry_stops_running_commands() -> None:
    registry = Registry(default_timeout=None)
    registry.register_agent("shell", make_shell_agent(grace=0.2))
    task_id = await start_approved(registry, "echo $$; sleep 60")
    pgid = await pgid_of(registry, task_id)

    await registry.close()

    assert registry.get(task_id).end_reason is EndReason.RESTARTED  # a stop, not an abort
    await until(lambda: group_gone(pgid), what=f"process group {pgid} to vanish")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BadRequest, match="grace"):
        make_shell_agent(grace=-1)
    with pytest.raises(BadRequest, match="tail_lines"):
        make_shell_agent(tail_lines=0)


@pytest.mark.timeout(60)
async def test_kill_9_of_the_daemon_takes_the_approved_command_with_it(tmp_path: Path) -> None:
    """A real `taskdeck serve` runs an approved command that would leave a mark after a
    delay, in the foreground and in the background; `kill -9` of the daemon must stop
    the whole group before either mark is made."""
    runtime = tmp_path / "run"
    pidfile, marker, background = tmp_path / "pid", tmp_path / "marker", tmp_path / "bg"
    delay = 1.5
    command = (
        f"(sleep {delay}; touch {shlex.quote(str(background))}) & "
        f"echo $$ > {shlex.quote(str(pidfile))}; sleep {delay}; touch {shlex.quote(str(marker))}"
    )
    env = {**os.environ, "TASKDECK_STATE_DIR": str(tmp_path / "state")}
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "serve", "--runtime-dir", str(runtime),
        "--journal", str(tmp_path / "journal.sqlite3"),
        env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until(lambda: connection_path(runtime).exists() or daemon.returncode is not None,
                    timeout=15, what="the daemon to start")
        async with Client(runtime) as client:
            task = await client.submit("shell", command)
            prompt_id = await _prompt_of(client, task.id)
            await client.answer(prompt_id, "approve")
            await until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10,
                        what="the command to start")
            pgid = int(pidfile.read_text())
            started = time.monotonic()
            assert os.getpgid(pgid) == pgid
        daemon.kill()
        await daemon.wait()
        await until(lambda: not _group_alive(pgid), timeout=5, what="the group to die")
        # Nothing is left that could make the marks; wait out their delay to show it.
        await asyncio.sleep(max(0.0, started + delay + 0.5 - time.monotonic()))
        assert not marker.exists() and not background.exists()
    finally:
        if daemon.returncode is None:
            daemon.kill()
            await daemon.wait()


async def _prompt_of(client: Client, task_id: int) -> int:
    """The id of the question the task asks (polled through `get`, with a deadline)."""
    deadline = time.monotonic() + 10
    while True:
        task, _ = await client.get(task_id)
        if task.blocked_on is not None:
            return task.blocked_on.prompt_id
        assert time.monotonic() < deadline, "the shell agent never asked"
        await asyncio.sleep(0.01)
