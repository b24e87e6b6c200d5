"""One MCP host session as a task in the tree, with its sub-tasks and its questions, kept
through the client library only.

The session's task opens when the host has said who it is (its client name is the task's
agent) and is found again by its key ("mcp:HOST:PID" of the host process, or `--key`), so
a host that restarts its server keeps its task. Its lease is renewed while this process
lives: a killed server leaves a task that fails as lost.

The session ends with the connection: a host that closes it with nothing pending ends the
task (still-open sub-tasks fail), a host that leaves while a question waits closes that
question with the reason and leaves the task to fail as lost. An abort in taskdeck is
final for the session: every later call answers "aborted", nothing opens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import anyio

from core.client import Client, ExternalTask, NoWordInTime
from core.errors import InvalidState, NotPending, PromptTimedOut, TaskdeckError, UnknownTask
from core.model import MAX_NAME, MAX_TEXT, EndReason, Prompt, Question, Task

T = TypeVar("T")

CLIENT_NAME = "mcp"
"""Recorded as the origin of every command this server sends."""

ANSWERER = "taskdeck mcp"
"""Who closes a question nobody waits for any more, in the audit."""

DEFAULT_LEASE = 30.0
"""Seconds the session's task lives without word from this process before it fails as lost."""

CLOSE_WITHIN = 3.0
"""Seconds spent closing a question nobody waits for, even while being cancelled."""


class Aborted(TaskdeckError):
    """The person aborted the session (or the sub-task) this call works on."""


class Unknown(TaskdeckError):
    """A sub-task id this session did not start."""


class HostSession:
    """The task of one MCP host session, its sub-tasks and the questions they ask.

    Args:
        runtime_dir: where the daemon's connection file is (default: ours).
        key: the session task's external key; default "mcp:HOST:PPID".
        lease: seconds without a heartbeat before the daemon fails the task as lost.
        cwd: shown in the task's description.
    """

    def __init__(
        self,
        runtime_dir: Path | str | None = None,
        *,
        key: str | None = None,
        lease: float = DEFAULT_LEASE,
        cwd: str | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.key = key
        self.lease = lease
        self.cwd = cwd if cwd is not None else os.getcwd()
        self.host = "mcp"
        """The host's client name from `initialize` (the task's agent)."""
        self.host_version = ""
        self.host_gone = False
        """Set when the host closed the connection; questions then end as lost, not cancelled."""
        self.abandoned = False
        """A question was cut short by the host, which has made no call since: if it leaves
        now, the task is left to end as lost."""
        self.aborted: str | None = None
        """Why the session was aborted in taskdeck; every later call answers so."""
        self._client: Client | None = None
        self._root: ExternalTask | None = None
        self._subtasks: dict[int, ExternalTask] = {}
        self._opening = asyncio.Lock()
        self._asking: dict[int, asyncio.Lock] = {}
        """One question per task at a time (a task waits on one prompt): calls queue."""

    # ------------------------------------------------------------- identity

    def meet(self, name: str | None, version: str | None) -> None:
        """Name the session after the host's `clientInfo` (before its task opens)."""
        if name and self._root is None:
            self.host = name.strip()[:MAX_NAME] or self.host
            self.host_version = (version or "")[:MAX_NAME]

    @property
    def session_key(self) -> str:
        return self.key or f"mcp:{self.host}:{os.getppid()}"

    @property
    def description(self) -> str:
        host = f"{self.host} {self.host_version}".strip()
        return f"{host} (MCP) in {self.cwd}"[:MAX_TEXT]

    def called(self) -> None:
        """The host made a call: a question it gave up on before was not its last word."""
        self.abandoned = False

    # ------------------------------------------------------------- tasks

    async def _connect(self) -> Client:
        if self._client is None:
            client = Client(self.runtime_dir, client_name=CLIENT_NAME)
            await client.connect()  # raises Unavailable with no daemon: retried next call
            self._client = client
        return self._client

    async def root(self) -> ExternalTask:
        """The session's task, opened (or found again by key) on first use.

        Raises:
            Aborted: the person aborted the session.
            Unavailable: no daemon answers.
        """
        async with self._opening:
            if self.aborted is not None:
                raise Aborted(self.aborted)
            client = await self._connect()
            if self._root is None or self._root.task.status.is_ended:
                self._root = await client.open_task(
                    self.description, agent=self.host, lease=self.lease, key=self.session_key
                )
            return self._root

    async def target(self, subtask_id: int | None) -> ExternalTask:
        """The task a call works on: the session's, or one of its sub-tasks."""
        root = await self.root()
        if subtask_id is None:
            return root
        found = self._subtasks.get(subtask_id)
        if found is None:
            raise Unknown(
                f"no sub-task {subtask_id} in this session"
                + (f" (open: {', '.join(map(str, self._subtasks))})" if self._subtasks else "")
            )
        return found

    async def start_subtask(self, description: str, parent_id: int | None) -> Task:
        parent = await self.target(parent_id)
        client = await self._connect()
        child = await self._acting(parent, client.open_task(
            description, agent=self.host, parent_id=parent.id, lease=self.lease))
        self._subtasks[child.id] = child
        return child.task

    async def finish_subtask(self, subtask_id: int, result: str | None, error: str | None) -> Task:
        child = await self.target(subtask_id)
        if error is not None:
            await self._acting(child, child.fail(error))
        else:
            await self._acting(child, child.finish(result or ""))
        del self._subtasks[subtask_id]
        return child.task

    async def report(self, text: str, prompt_tokens: int, completion_tokens: int,
                     subtask_id: int | None) -> None:
        task = await self.target(subtask_id)
        await self._acting(task, task.progress(text))
        if prompt_tokens or completion_tokens:
            await self._acting(task, task.add_tokens(prompt_tokens, completion_tokens))

    async def _acting(self, task: ExternalTask, step: Awaitable[T]) -> T:
        """Await `step` on `task`; an ended task raises `Aborted` when an abort ended it."""
        try:
            return await step
        except InvalidState:
            await self._raise_if_aborted(task)
            raise
        except UnknownTask:
            self._forget(task)
            raise

    def _forget(self, task: ExternalTask) -> None:
        """A daemon that restarted without its journal knows the task no more: the next
        call opens the session's task afresh."""
        if task is self._root:
            self._root = None
        self._subtasks.pop(task.id, None)

    async def _raise_if_aborted(self, task: ExternalTask) -> None:
        client = await self._connect()
        try:
            found, _ = await client.get(task.id)
        except TaskdeckError:
            return
        task.task = found
        if found.end_reason is EndReason.ABORTED:
            why = found.error or "aborted"
            if task is self._root:
                self.aborted = why
            self._subtasks.pop(task.id, None)
            raise Aborted(why)

    # ------------------------------------------------------------- questions

    async def ask(self, task: ExternalTask, question: Question) -> Prompt:
        """Ask on `task` and wait for the answer; returns the answered prompt.

        When the wait ends without an answer for a reason of ours (the host cancelled the
        call or left, an error), the still pending question is closed with that reason,
        so nobody answers a question no one waits for.

        Raises:
            PromptTimedOut: nobody answered within the question's timeout.
            Aborted: the task was aborted while it waited.
            NotPending: the question was closed some other way.
        """
        asked: list[Prompt] = []
        lock = self._asking.setdefault(task.id, asyncio.Lock())
        async with lock:
            try:
                return await task.ask(question, on_asked=asked.append)
            except InvalidState:
                await self._raise_if_aborted(task)
                raise
            except UnknownTask:
                self._forget(task)
                raise
            except PromptTimedOut as exc:
                if asked and isinstance(exc, NoWordInTime):  # the daemon may still hold it open
                    await self._close(asked[0], exc)
                raise
            except NotPending:
                raise
            except BaseException as exc:  # cancelled, the host gone, errors
                if asked:
                    await self._close(asked[0], exc)
                raise

    async def _close(self, prompt: Prompt, exc: BaseException) -> None:
        if self.host_gone:
            self.abandoned = True
            why = f"the MCP host {self.host} disconnected before anyone answered"
        elif isinstance(exc, asyncio.CancelledError):
            self.abandoned = True  # until its next call: a host quitting cancels, then leaves
            why = f"the MCP host {self.host} stopped waiting (it cancelled the call)"
        elif isinstance(exc, PromptTimedOut):
            why = "nobody answered in time"
        else:
            why = f"taskdeck mcp stopped waiting: {exc}"
        client = self._client
        if client is None:
            return
        # Shielded from the cancellation this runs in (the server's calls run in anyio task
        # groups, whose cancellation hits every await inside them), and bounded.
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_WITHIN), \
                contextlib.suppress(TaskdeckError):
            await client.answer(prompt.id, "deny", reason=why[:MAX_TEXT], by=ANSWERER)

    # ------------------------------------------------------------- the end

    async def close(self) -> None:
        """End the session with the connection; see the module's docstring."""
        client = self._client
        if client is None:
            return
        try:
            if self._root is not None and self.aborted is None and not self.abandoned:
                with contextlib.suppress(TaskdeckError):
                    for child in reversed(list(self._subtasks.values())):
                        with contextlib.suppress(TaskdeckError):
                            await child.fail("unfinished when the MCP session ended")
                    if not self._root.task.status.is_ended:
                        await self._root.finish(f"the MCP host {self.host} ended the session")
        finally:
            await client.close()  # lease heartbeats stop: whatever is still live ends as lost
