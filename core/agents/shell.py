"""The `shell` agent: approval first, then the command in its own process group, killed on abort."""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from core.context import Agent, AgentContext
from core.errors import BadRequest, InvalidState, TaskdeckError
from core.model import Prompt, Question

PROGRESS_INTERVAL = 0.25
"""Seconds between progress updates from a chatty command; the last line always shows."""

MAX_LINE = 500
"""Characters kept of one output line (in the tail and the progress line)."""

_POLL = 0.02
"""Seconds between checks on a process group that is shutting down."""

_LEASH = str(Path(__file__).with_name("leash.py"))
"""The script that ties a command's process group to the daemon's life (see leash.py)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class CommandDenied(TaskdeckError):
    """The person asked did not approve the command, so it never ran."""

    code = "DENIED"


class CommandFailed(TaskdeckError):
    """The command exited with a non-zero status or was killed by a signal."""

    code = "COMMAND_FAILED"


def make_shell_agent(*, grace: float = 2.0, tail_lines: int = 20) -> Agent:
    """An agent whose task description is a `/bin/sh` command.

    It asks "Run `<cmd>`?" (approve/deny); only `approve` runs the command, any other
    answer fails the task without running it. The command gets its own session and
    process group, which the task owns: when the command exits, anything it left
    running in the group is stopped; when the task is aborted or times out, the group
    gets SIGTERM, then SIGKILL after `grace` seconds, before the cancellation goes on.
    On Linux the group also dies with the daemon, even by `kill -9` (core/agents/leash.py).

    Returns:
        The agent. Its result is "exit 0" and the last `tail_lines` lines of output;
        a non-zero exit fails the task with "exit N: <last line>".

    Raises:
        BadRequest: grace is negative or tail_lines is below 1.
    """
    if grace < 0:
        raise BadRequest("grace must not be negative")
    if tail_lines < 1:
        raise BadRequest("tail_lines must be at least 1")

    async def shell(ctx: AgentContext) -> str:
        command = ctx.description
        if not command.strip():
            raise CommandFailed("empty command")
        prompt = await ctx.ask_prompt(Question(text=f"Run `{command}`?"))
        if prompt.answer != "approve":
            raise CommandDenied(_refusal(prompt))
        ctx.progress("starting")
        return await _run(ctx, command, grace=grace, tail_lines=tail_lines)

    shell.__qualname__ = shell.__name__ = "shell"
    return shell


def _refusal(prompt: Prompt) -> str:
    """Who said no and why, e.g. "denied by tui:ana@box: not on prod"."""
    if prompt.answer == "deny":
        return f"denied by {prompt.answered_by}" + (f": {prompt.reason}" if prompt.reason else "")
    return f"not approved by {prompt.answered_by}: {prompt.answer}"


async def _run(ctx: AgentContext, command: str, *, grace: float, tail_lines: int) -> str:
    process = await asyncio.create_subprocess_exec(
        *_shell_argv(command),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    pgid = process.pid  # a new session leader leads its own group
    output = _Output(ctx, tail_lines)
    assert process.stdout is not None
    reader = asyncio.get_running_loop().create_task(output.pump(process.stdout))
    try:
        code = await process.wait()
        await _stop_group(process, pgid, grace)  # whatever it left running in the background
        await _drain(reader, max(grace, 0.5))
    except asyncio.CancelledError:
        await _stop_group(process, pgid, grace)
        await _drain(reader, 0.5)
        raise
    finally:
        reader.cancel()
        output.close()
    tail = output.tail()
    if code == 0:
        return "exit 0" + (f"\n{tail}" if tail else "")
    status = f"killed by {_signal_name(-code)}" if code < 0 else f"exit {code}"
    last = output.last_line()
    raise CommandFailed(f"{status}: {last}" if last else status)


def _shell_argv(command: str) -> list[str]:
    """`/bin/sh -c command`, on Linux behind the leash that kills its group with the daemon.

    Without it a `kill -9` of the daemon left an approved command running while the
    restored task said it had failed: the side effect came after the record said it did not.
    """
    if sys.platform.startswith("linux") and sys.executable:
        return [sys.executable, "-I", "-S", _LEASH, str(os.getpid()), command]
    return ["/bin/sh", "-c", command]


async def _stop_group(process: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
    """SIGTERM the group, give it `grace` seconds, SIGKILL what is left, reap our child.

    The SIGKILL is sent even if this coroutine is cancelled while it waits, so an
    impatient caller can shorten the grace but never leave the group running.
    """
    if process.returncode is not None and not _group_alive(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=grace)
        while _group_alive(pgid) and loop.time() < deadline:
            await asyncio.sleep(_POLL)
    finally:
        if process.returncode is None or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    await process.wait()


async def _drain(reader: asyncio.Task[None], timeout: float) -> None:
    """Let the reader reach end of file, so the pipe closes; a process outside the
    group may still hold it open, so give up after `timeout` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), timeout=timeout)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group still runs (zombies awaiting reaping do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Output:
    """Keeps the command's output tail and mirrors its latest line into the task's progress."""

    def __init__(self, ctx: AgentContext, tail_lines: int) -> None:
        self._ctx = ctx
        self._lines: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._shown: str | None = None
        self._last_update = float("-inf")
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Read until end of file."""
        while chunk := await stream.read(65536):
            self.feed(chunk)
        self.feed(b"", final=True)

    def feed(self, data: bytes, *, final: bool = False) -> None:
        """Take a chunk of output; split it into lines."""
        text = self._partial + self._decoder.decode(data, final=final)
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._lines.append(_clean(line))
        if len(self._partial) > 4 * MAX_LINE:  # a huge line with no newline (yet)
            self._lines.append(_clean(self._partial))
            self._partial = ""
        if final and self._partial:
            self._lines.append(_clean(self._partial))
            self._partial = ""
        self._schedule_progress()

    def last_line(self) -> str:
        """The latest non-blank line, including one still being written."""
        partial = _clean(self._partial)
        if partial.strip():
            return partial
        for line in reversed(self._lines):
            if line.strip():
                return line
        return ""

    def tail(self) -> str:
        """The last lines of output, trailing blank lines dropped."""
        lines = list(self._lines)
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join(lines)

    def close(self) -> None:
        """Stop updating progress."""
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _schedule_progress(self) -> None:
        if self._closed or self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_update + PROGRESS_INTERVAL - loop.time()
        if wait <= 0:
            self._show_progress()
        else:
            self._flush_handle = loop.call_later(wait, self._show_progress)

    def _show_progress(self) -> None:
        self._flush_handle = None
        if self._closed:
            return
        line = self.last_line()
        if not line or line == self._shown:
            return
        self._last_update = asyncio.get_running_loop().time()
        self._shown = line
        with contextlib.suppress(InvalidState):  # the task ended under us: it is being stopped
            self._ctx.progress(line)


def _clean(line: str) -> str:
    """What a terminal would show of the line: after the last carriage return, no escapes."""
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    line = _ANSI.sub("", line).rstrip()
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
