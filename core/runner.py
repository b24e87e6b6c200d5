"""Running in-process agents: their asyncio tasks and the futures their awaits hang on.

The registry decides (a task starts, a prompt closes, a task ends) and tells the
runner; the runner only executes: it starts an agent's coroutine with its
`AgentContext`, wakes the `ask` or `wait` that waits on a decision, cancels the
run of a task that ended, and reports back how each agent returned.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import Literal

from core.clock import Scheduler
from core.context import Agent, AgentContext, Desk
from core.errors import PromptCancelled, PromptTimedOut, Unrecorded
from core.model import Prompt, PromptState, Task

Returned = Callable[[int, object, BaseException | None], None]
"""Told how a run ended: `(task_id, result, error)`, error being a `CancelledError` too."""


class Runner:
    """The asyncio side of in-process tasks, driven by the registry's decisions."""

    def __init__(self, desk: Desk, clock: Scheduler, returned: Returned) -> None:
        self._desk = desk
        self._clock = clock
        self._returned = returned
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._answers: dict[int, asyncio.Future[None]] = {}
        """By prompt id: the future an `ask` awaits until its prompt closes."""
        self._end_waiters: dict[int, list[asyncio.Future[None]]] = collections.defaultdict(list)
        self._held: list[Callable[[str | None], None]] | None = None
        """While `hold` is on: the wake-ups decided since, kept until `release` calls each
        with the error that kept the decisions from being recorded (None: recorded)."""

    def start(self, task_id: int, agent: Agent) -> None:
        """Run `agent` for the task as an asyncio task of its own."""
        run = asyncio.get_running_loop().create_task(
            self._run(task_id, agent), name=f"taskdeck-task-{task_id}"
        )
        self._runs[task_id] = run
        # Not in _run's `finally`: a run cancelled before its first step never executes it.
        run.add_done_callback(lambda _: self._runs.pop(task_id, None))

    async def _run(self, task_id: int, agent: Agent) -> None:
        try:
            result = await agent(AgentContext(self._desk, task_id))
        except asyncio.CancelledError as exc:
            self._returned(task_id, None, exc)
            raise
        except Exception as exc:  # noqa: BLE001 -- any agent failure is its task's failure
            self._runs.pop(task_id, None)  # done working: ending the task must not cancel us
            self._returned(task_id, None, exc)
        else:
            self._runs.pop(task_id, None)
            self._returned(task_id, result, None)

    def expect(self, prompt_id: int) -> asyncio.Future[None]:
        """The future an asker awaits; made before the prompt is announced, since a
        listener may answer it in that very step."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers[prompt_id] = future
        return future

    def closed(self, prompt: Prompt) -> None:
        """Wake the asker of a prompt that closed: answered, timed out or cancelled
        (or, while `hold` is on, keep the wake-up for `release`)."""
        future = self._answers.pop(prompt.id, None)
        if future is None or future.done():
            return
        error: BaseException | None = None
        if prompt.state is PromptState.TIMED_OUT:
            error = PromptTimedOut(f"nobody answered within {prompt.timeout:g}s")
        elif prompt.state is not PromptState.ANSWERED:
            error = PromptCancelled(f"prompt {prompt.id} was cancelled")
        if self._held is None:
            _wake(future, error)
        elif error is None:  # an answer: delivered only once it is recorded
            self._held.append(lambda unrecorded: _wake(future, _refused(prompt, unrecorded)))
        else:
            self._held.append(lambda _: _wake(future, error))

    def hold(self) -> None:
        """Keep wake-ups until `release`: while a batch's decisions are not yet committed,
        no agent may resume on them (asks answered, waits on tasks that ended, runs
        cancelled)."""
        if self._held is None:
            self._held = []

    def release(self, unrecorded: str | None = None) -> None:
        """Deliver the wake-ups kept since `hold`, in order.

        With `unrecorded` (why the commit of the decisions failed), an asker whose
        prompt was answered gets `Unrecorded` from its `ask` instead of the answer:
        nobody acts on an answer the journal does not hold. Cancellations, timeouts and
        ended tasks are delivered as they are: they stop or report, they approve
        nothing, and the registry holds them ended already.
        """
        held, self._held = self._held, None
        for deliver in held or ():
            deliver(unrecorded)

    def ended(self, task_id: int) -> None:
        """Wake whoever waits for the task, and cancel its run if it still works (or,
        while `hold` is on, keep that for `release`)."""
        if self._held is not None:
            self._held.append(lambda _: self._end(task_id))
        else:
            self._end(task_id)

    def _end(self, task_id: int) -> None:
        for waiter in self._end_waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)
        run = self._runs.get(task_id)
        if run is not None:
            # Also the current task, when an agent aborts a subtree holding itself:
            # it then sees CancelledError at its next await.
            run.cancel()

    async def wait(
        self,
        ids: list[int],
        ended: Callable[[], dict[int, Task]],
        *,
        mode: Literal["all", "any"],
        timeout: float | None,
    ) -> dict[int, Task]:
        """Wait until `ended()` holds all (or any) of `ids`, or `timeout` passes on the clock."""
        loop = asyncio.get_running_loop()
        late: asyncio.Future[None] = loop.create_future()
        timer = None
        if timeout is not None:
            timer = self._clock.call_later(timeout, lambda: late.done() or late.set_result(None))
        try:
            while True:
                done = ended()
                if len(done) == len(ids) or (mode == "any" and done) or late.done():
                    return done
                if timeout is not None and timeout <= 0:
                    return done
                await self._any_end([i for i in ids if i not in done], late)
        finally:
            if timer is not None:
                timer.cancel()
            late.cancel()

    async def _any_end(self, ids: Iterable[int], late: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        futures = {i: loop.create_future() for i in ids}
        for i, future in futures.items():
            self._end_waiters[i].append(future)
        try:
            await asyncio.wait([*futures.values(), late], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for i, future in futures.items():
                future.cancel()
                waiters = self._end_waiters.get(i)
                if waiters is not None and future in waiters:
                    waiters.remove(future)

    async def join(self, task_id: int) -> None:
        """Wait until the task's run (and its clean-up) has fully returned."""
        run = self._runs.get(task_id)
        if run is not None:
            await asyncio.gather(run, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every run and wait for each to return."""
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    @property
    def runs(self) -> int:
        """Agent coroutines still working."""
        return len(self._runs)


def _wake(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve an asker's future: None for an answer, else the error its `ask` raises."""
    if future.done():  # its agent was cancelled meanwhile
        return
    if error is None:
        future.set_result(None)
        return
    future.set_exception(error)
    future.exception()  # nobody may await it (an aborted agent): mark it seen


def _refused(prompt: Prompt, unrecorded: str | None) -> Unrecorded | None:
    """What an answered asker gets: the answer (None) once it is recorded, else why not."""
    if unrecorded is None:
        return None
    return Unrecorded(f"prompt {prompt.id} was answered but the answer could not be recorded,"
                      f" so it is not delivered and nothing was approved: {unrecorded}")
