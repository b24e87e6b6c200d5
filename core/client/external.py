"""Tasks this process does and reports on: a lease renewed in the background, and
questions asked of a person and waited on through the live mirror."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from core import protocol as p
from core.client import calls
from core.client.calls import LOCAL_GRACE, NoWordInTime, _same_question, settle
from core.client.follow import _Following
from core.errors import TaskdeckError, Unavailable
from core.model import Action, Prompt, Question, Task

log = logging.getLogger(__name__)

__all__ = ["LOCAL_GRACE", "ExternalTask", "NoWordInTime"]


class ExternalTask:
    """A task this process does and reports on; its lease is renewed in the background.

    Use it as `async with await client.open_task(...) as task:` to finish it when the
    block ends (or fail it with the exception that ended the block).
    """

    def __init__(
        self,
        client: _Following,
        task: Task,
        lease: float,
        on_close: Callable[[ExternalTask], None] | None = None,
    ) -> None:
        self.client = client
        self.id = task.id
        self.task = task
        self.lease = lease
        self._ended = False
        self._on_close = on_close
        """Tells the client this task no longer needs closing with it."""
        self._beat: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._keep_alive(), name=f"taskdeck-lease-{task.id}"
        )

    def __repr__(self) -> str:
        return f"ExternalTask(id={self.id})"

    async def __aenter__(self) -> ExternalTask:
        return self

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if not self._ended:
            with contextlib.suppress(TaskdeckError):
                if exc is None:
                    await self.finish()
                elif isinstance(exc, Exception):
                    await self.fail(f"{type(exc).__name__}: {exc}"[: p.MAX_RESULT])
        await self.close()

    async def _keep_alive(self) -> None:
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.request(p.LeaseHeartbeat(task_id=self.id))
            except Unavailable as exc:
                log.warning("lease of task %d not renewed: %s", self.id, exc)
            except TaskdeckError as exc:  # ended or gone: nothing left to keep alive
                log.info("task %d: lease heartbeats stop: %s", self.id, exc)
                return

    async def close(self) -> None:
        """Stop renewing the lease (the task fails as lost unless it has ended)."""
        if self._on_close is not None:
            self._on_close(self)
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None

    async def ask(
        self,
        question: str | Question,
        *,
        choices: Iterable[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
        action: Action | None = None,
        on_asked: Callable[[Prompt], None] | None = None,
    ) -> Prompt:
        """Ask a person and wait for the answer; returns the answered prompt.

        `question` is a `Question`, or its text with the rest as keywords; `action` is
        what the asker wants to do (tool, input), shown to the person with the question.
        Subscribes to the daemon's events before asking, so the answer cannot be missed.
        `on_asked` is called with the prompt once the daemon has accepted it.

        The timeout holds here too, not only in the daemon: a daemon that is stopped or
        gone cannot keep the caller waiting past it plus `LOCAL_GRACE` seconds.

        Raises:
            PromptTimedOut: nobody answered within the timeout and there is no default.
            NoWordInTime: nor did the daemon say so within `LOCAL_GRACE` after it.
            InvalidState: the task was aborted (or ended) while waiting.
            NotPending: the prompt was cancelled.
            Unrecorded: it was answered, but the daemon's journal failed to record it.
            TypeError: a `Question` together with choices, timeout, default or action keywords.
        """
        asked = _question(question, choices, timeout, default, action)
        if asked.timeout is None:
            return await self._ask(asked, on_asked)
        deadline = asyncio.timeout(asked.timeout + LOCAL_GRACE)
        try:
            async with deadline:
                return await self._ask(asked, on_asked)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise NoWordInTime(
                f"nobody answered within {asked.timeout:g}s (and no word from the daemon)"
            ) from None

    async def _ask(self, question: Question, on_asked: Callable[[Prompt], None] | None) -> Prompt:
        client = self.client
        await client.start_mirror()
        await client.wait_synced(timeout=max(5.0, client.request_timeout * client.retries))
        prompt = await client._do(calls.ask(self.id, question))
        try:
            if on_asked is not None:
                on_asked(prompt)
            task, closed = await client._watch_prompt(prompt)
        finally:
            client._prompt_waiters.pop(prompt.id, None)
        self.task = task
        if task.status.is_ended and _same_question(prompt, closed):
            self._ended = True
        return calls.recorded(settle(prompt, closed, task), await client.hello())

    async def add_tokens(self, prompt: int = 0, completion: int = 0) -> None:
        """Count tokens this task spent."""
        await self.client.request(p.Tokens(task_id=self.id, prompt=prompt, completion=completion))

    async def progress(self, text: str | None) -> None:
        """Show a short line of what the task does now (None clears it)."""
        await self.client.request(p.Progress(task_id=self.id, text=text))

    async def heartbeat(self, lease: float | None = None) -> None:
        """Renew the lease now (optionally with a new length)."""
        if lease is not None:
            self.lease = lease
        await self.client.request(p.LeaseHeartbeat(task_id=self.id, lease=lease))

    async def finish(self, result: str = "") -> None:
        """End the task with its result."""
        self.task = (await self.client._call(p.Finish(task_id=self.id, result=result),
                                             p.TaskResult)).task
        self._ended = True
        await self.close()

    async def fail(self, error: str) -> None:
        """End the task as failed."""
        self.task = (await self.client._call(p.Fail(task_id=self.id, error=error),
                                             p.TaskResult)).task
        self._ended = True
        await self.close()


def _question(
    question: str | Question,
    choices: Iterable[str] | None,
    timeout: float | None,
    default: str | None,
    action: Action | None = None,
) -> Question:
    """The `Question` an `ask` was given, or the one its text and keywords spell out."""
    if not isinstance(question, Question):
        listed = list(choices) if choices is not None else None
        return Question(text=question, choices=listed, timeout=timeout, default=default,
                        action=action)
    if choices is not None or timeout is not None or default is not None or action is not None:
        raise TypeError(
            "give choices, timeout, default and action inside the Question, not beside it"
        )
    return question
