"""The task registry: a state machine over asyncio that emits one numbered event per change.

It knows nothing of sockets or screens. Callers (the server, tests, agents through
`AgentContext`) call its methods; listeners receive every `Event` synchronously, in
the same step as the change, so a snapshot and the event stream always agree.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal

from core.errors import (
    AlreadyAnswered,
    BadRequest,
    InvalidState,
    NotPending,
    PromptCancelled,
    PromptTimedOut,
    UnknownAgent,
    UnknownPrompt,
    UnknownTask,
)
from core.model import (
    DEFAULT_CHOICES,
    MAX_COUNT,
    BlockedOn,
    BlockedReason,
    Body,
    EndReason,
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Snapshot,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
    TaskStatus,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from core.context import AgentContext

Agent = Callable[["AgentContext"], Awaitable[object]]
"""An in-process agent: `async def agent(ctx) -> str`."""

Listener = Callable[[Event], None]
"""Called with every event, in seq order, inside the step that made it."""

Recorder = Callable[..., None]
"""Writes a decision before it is applied: `recorder(action, *, task_id, prompt_id,
question, detail, by, origin, affected, tasks, prompts)`, `tasks` and `prompts`
being copies as the decision leaves them; raising refuses the decision (`Journal.record`)."""

DEFAULT_TIMEOUT = 300.0
"""Seconds an in-process task may run (blocked time included) before it fails."""

DEFAULT_LEASE = 30.0
"""Seconds an external task lives without a heartbeat before it fails as lost."""

_DEFAULT_CHOICES = list(DEFAULT_CHOICES)
"""One list shared by every prompt that declares no choices (choices are never mutated)."""


class Registry:
    """Tasks, their tree, their prompts and the concurrency limit.

    Concurrency: at most `max_concurrent` in-process tasks are `in_progress`;
    the rest wait `queued` and start oldest first. A blocked task gives its slot
    back. A task resumed after an answer (or after its sub-tasks end) goes back to
    `in_progress` at once, even if that briefly exceeds the limit: its work is
    already in memory, so making it queue again would only add latency. No queued
    task starts until the count is below the limit again. External tasks report
    their own work and take no slot.
    """

    def __init__(
        self,
        *,
        max_concurrent: int = 4,
        default_timeout: float | None = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        epoch: int | None = None,
        agents: dict[str, Agent] | None = None,
        first_id: int = 1,
    ) -> None:
        if max_concurrent < 1:
            raise BadRequest("max_concurrent must be at least 1")
        if default_timeout is not None and default_timeout <= 0:
            raise BadRequest("default_timeout must be positive (None: no timeout)")
        self.max_concurrent = max_concurrent
        self.default_timeout = default_timeout
        self.clock = clock
        self.epoch = epoch if epoch is not None else secrets.randbits(62)
        self.seq = 0
        self._agents: dict[str, Agent] = dict(agents or {})
        self._tasks: dict[int, Task] = {}
        self._children: dict[int, list[int]] = collections.defaultdict(list)
        self._agent_tasks: collections.Counter[str] = collections.Counter()
        """Tasks in memory per agent name: `list(agent=...)` validates without a scan."""
        self._prompts: dict[int, Prompt] = {}
        self._task_prompts: dict[int, tuple[int, ...]] = {}
        """Prompt ids by task id, oldest first: a task's history without a scan.

        Tuples, not lists: most tasks ask once or never, and this is per task held.
        """
        self._pending: dict[int, asyncio.Future[str]] = {}
        self._queue: collections.deque[int] = collections.deque()
        self._slots: set[int] = set()
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._prompt_timers: dict[int, asyncio.TimerHandle] = {}
        self._leases: dict[int, tuple[float, asyncio.TimerHandle]] = {}
        self._end_waiters: dict[int, list[asyncio.Future[None]]] = collections.defaultdict(list)
        self._listeners: tuple[Listener, ...] = ()
        """Replaced, never mutated: `_emit` iterates it with no copy per event."""
        self._outbox: collections.deque[Event] = collections.deque()
        self._hold_promotion = 0
        self._delivering = False
        self._next_task_id = first_id
        self._next_prompt_id = first_id
        self._closing = False
        self.recorder: Recorder | None = None
        """When set, every decision (answer, abort, a timeout's default) is written
        through it before it changes anything; a decision it cannot write is refused."""

    # ------------------------------------------------------------------ agents

    def register_agent(self, name: str, agent: Agent) -> None:
        """Make `agent` runnable under `name` (replacing any agent of that name)."""
        if not name:
            raise BadRequest("agent name must not be empty")
        self._agents[name] = agent

    @property
    def agents(self) -> list[str]:
        """Names of the registered agents, sorted."""
        return sorted(self._agents)

    # -------------------------------------------------------------- listeners

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every future event; returns a function that stops it."""
        self._listeners = (*self._listeners, listener)

        def stop() -> None:
            if listener in self._listeners:
                listeners = list(self._listeners)
                listeners.remove(listener)
                self._listeners = tuple(listeners)

        return stop

    def subscribe(self) -> Subscription:
        """An async iterator over every future event, with an unbounded buffer."""
        return Subscription(self)

    def _emit(self, body: Body) -> Event:
        self.seq += 1
        event = Event(epoch=self.epoch, seq=self.seq, ts=self.clock(), body=body)
        self._outbox.append(event)
        if self._delivering:
            # A listener changed the registry while it was told of an earlier event:
            # the outer loop delivers this one after it, so every listener sees seq order.
            return event
        self._delivering = True
        try:
            while self._outbox:
                queued = self._outbox.popleft()
                for listener in self._listeners:
                    try:
                        listener(queued)
                    except Exception:  # a broken listener must not break the registry
                        log.exception("event listener failed on seq %d", queued.seq)
        finally:
            self._delivering = False
        return event

    # ---------------------------------------------------------------- queries

    def get(self, task_id: int) -> Task:
        """A copy of the task with that id.

        Raises:
            UnknownTask: no such task.
        """
        return copy.copy(self._task(task_id))

    def get_prompt(self, prompt_id: int) -> Prompt:
        """A copy of the prompt with that id.

        Raises:
            UnknownPrompt: no such prompt.
        """
        try:
            return copy.copy(self._prompts[prompt_id])
        except KeyError:
            raise UnknownPrompt(f"no prompt {prompt_id}") from None

    def prompts_of(self, task_id: int) -> list[Prompt]:
        """Every prompt the task asked, oldest first: its question and answer history."""
        self._task(task_id)
        return [copy.copy(self._prompts[i]) for i in self._task_prompts.get(task_id, ())]

    def pending_prompts(self) -> list[Prompt]:
        """Prompts waiting for an answer, oldest first."""
        return [
            copy.copy(prompt)
            for pid in sorted(self._pending)
            if (prompt := self._prompts[pid]).state is PromptState.PENDING
        ]

    def children(self, task_id: int) -> list[Task]:
        """Direct sub-tasks, oldest first."""
        self._task(task_id)
        return [copy.copy(self._tasks[c]) for c in self._children.get(task_id, ())]

    def subtree(self, task_id: int) -> list[Task]:
        """The task and all its descendants, parents before children."""
        return [copy.copy(self._tasks[i]) for i in self._subtree_ids(task_id)]

    def subtree_tokens(self, task_id: int) -> int:
        """Tokens spent by the task and all its descendants."""
        return sum(self._tasks[i].tokens for i in self._subtree_ids(task_id))

    def list(
        self,
        *,
        agent: str | None = None,
        status: TaskStatus | str | None = None,
        parent_id: int | None = None,
        roots_only: bool = False,
        limit: int | None = 100,
        before: int | None = None,
    ) -> list[Task]:
        """Tasks newest first, filtered, at most `limit` of them with ids below `before`.

        Raises:
            BadRequest: unknown status or a bad window.
            UnknownAgent: no agent of that name is registered or has run.
            UnknownTask: the parent does not exist.
        """
        if status is not None:
            try:
                status = TaskStatus(status)
            except ValueError:
                names = ", ".join(s.value for s in TaskStatus)
                raise BadRequest(f"unknown status {status!r} (one of {names})") from None
        if agent is not None and agent not in self._agents and not self._agent_tasks[agent]:
            raise UnknownAgent(f"no agent {agent!r}")
        if parent_id is not None:
            self._task(parent_id)
        if limit is not None and limit < 0:
            raise BadRequest("limit must not be negative")
        # Ids only grow, and both indexes keep them in creation order: newest first is reversed.
        candidates = self._tasks if parent_id is None else self._children.get(parent_id, ())
        out: list[Task] = []
        for task_id in reversed(candidates):
            if limit is not None and len(out) >= limit:
                break
            task = self._tasks[task_id]
            if before is not None and task_id >= before:
                continue
            if agent is not None and task.agent != agent:
                continue
            if status is not None and task.status is not status:
                continue
            if parent_id is not None and task.parent_id != parent_id:
                continue
            if roots_only and task.parent_id is not None:
                continue
            out.append(copy.copy(task))
        return out

    def snapshot(self) -> Snapshot:
        """Every task and pending prompt, and the seq they reflect."""
        return Snapshot(
            epoch=self.epoch,
            seq=self.seq,
            tasks=[copy.copy(t) for t in self._tasks.values()],
            prompts=self.pending_prompts(),
        )

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def running(self) -> int:
        """In-process tasks holding a concurrency slot."""
        return len(self._slots)

    # ---------------------------------------------------------------- submit

    def submit(
        self,
        agent: str,
        description: str,
        *,
        parent_id: int | None = None,
        created_by: str = "user",
        timeout: float | None = None,
        session_id: str | None = None,
    ) -> Task:
        """Add a task for an in-process agent; it starts now if a slot is free, else queues.

        Raises:
            UnknownAgent: no agent of that name.
            UnknownTask: the parent does not exist.
            InvalidState: the parent has ended.
        """
        if agent not in self._agents:
            raise UnknownAgent(f"no agent {agent!r} (known: {', '.join(self.agents)})")
        if timeout is not None and timeout <= 0:
            raise BadRequest("timeout must be positive")
        task = self._create(
            agent=agent,
            description=description,
            parent_id=parent_id,
            created_by=created_by,
            session_id=session_id,
            timeout=timeout if timeout is not None else self.default_timeout,
        )
        self._queue.append(task.id)
        self._promote()
        return copy.copy(task)

    def open_external(
        self,
        description: str,
        *,
        agent: str = "external",
        parent_id: int | None = None,
        created_by: str = "user",
        session_id: str | None = None,
        lease: float = DEFAULT_LEASE,
        timeout: float | None = None,
    ) -> Task:
        """Add a task whose work happens elsewhere; it is in progress at once.

        Its reporter keeps it alive with `heartbeat` at least every `lease` seconds.
        """
        if lease <= 0:
            raise BadRequest("lease must be positive")
        if not agent:
            raise BadRequest("agent name must not be empty")
        task = self._create(
            agent=agent,
            description=description,
            parent_id=parent_id,
            created_by=created_by,
            session_id=session_id,
            timeout=timeout,
            external=True,
        )
        task.lease = lease
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = self.clock()
        self._emit(TaskCreated(task=copy.copy(task)))
        self._arm_timeout(task)
        self._renew_lease(task.id, lease)
        return copy.copy(task)

    def _create(self, *, parent_id: int | None, external: bool = False, **fields: object) -> Task:
        if not str(fields["description"]).strip():
            raise BadRequest("description must not be empty")
        if parent_id is not None and self._task(parent_id).status.is_ended:
            raise InvalidState(f"parent task {parent_id} has ended")
        task = Task(
            id=self._next_task_id,
            parent_id=parent_id,
            external=external,
            created_at=self.clock(),
            **fields,  # type: ignore[arg-type]
        )
        self._next_task_id += 1
        if task.session_id is None:
            task.session_id = f"{task.agent}-{task.id}"
        self._tasks[task.id] = task
        self._agent_tasks[task.agent] += 1
        if parent_id is not None:
            self._children[parent_id].append(task.id)
        if not external:
            self._emit(TaskCreated(task=copy.copy(task)))
        return task

    def _promote(self) -> None:
        if self._hold_promotion:
            return
        while self._queue and len(self._slots) < self.max_concurrent:
            task = self._tasks.get(self._queue.popleft())
            # Ids of tasks that ended while queued stay in the deque until they
            # reach its head (removing them in `_end` cost O(queue) per task).
            if task is not None and task.status is TaskStatus.QUEUED:
                self._start(task)

    def _start(self, task: Task) -> None:
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = self.clock()
        self._slots.add(task.id)
        self._emit(TaskChanged(task=copy.copy(task)))
        self._arm_timeout(task)
        agent = self._agents[task.agent]
        run = asyncio.get_running_loop().create_task(
            self._run(task.id, agent), name=f"taskdeck-task-{task.id}"
        )
        self._runs[task.id] = run
        # Not in _run's `finally`: a run cancelled before its first step never executes it.
        run.add_done_callback(lambda _: self._runs.pop(task.id, None))

    async def _run(self, task_id: int, agent: Agent) -> None:
        from core.context import AgentContext

        try:
            result = await agent(AgentContext(self, task_id))
        except asyncio.CancelledError:
            if self._closing:
                if not self._tasks[task_id].status.is_ended:  # the daemon stops under it
                    self._end(task_id, TaskStatus.FAILED, error="daemon stopped while the task ran",
                              reason=EndReason.RESTARTED)
            elif not self._tasks[task_id].status.is_ended:  # cancelled from outside us
                self._end(task_id, TaskStatus.FAILED, error="cancelled", reason=EndReason.ABORTED)
            raise
        except Exception as exc:  # noqa: BLE001 -- any agent failure is its task's failure
            self._runs.pop(task_id, None)  # done working: `_end` must not cancel us
            if not self._tasks[task_id].status.is_ended:
                self._end(task_id, TaskStatus.FAILED, error=_describe(exc), reason=EndReason.ERROR)
        else:
            self._runs.pop(task_id, None)
            if not self._tasks[task_id].status.is_ended:
                text = "" if result is None else str(result)
                self._end(task_id, TaskStatus.FINISHED, result=text)

    def _arm_timeout(self, task: Task) -> None:
        if task.timeout is None:
            return
        self._timers[task.id] = asyncio.get_running_loop().call_later(
            task.timeout, self._on_timeout, task.id
        )

    def _on_timeout(self, task_id: int) -> None:
        self._timers.pop(task_id, None)
        task = self._tasks.get(task_id)
        if task is None or task.status.is_ended:
            return
        self._end_subtree(
            task_id,
            error=f"task timed out after {task.timeout:g}s",
            reason=EndReason.TIMEOUT,
            descendants_error=f"parent task {task_id} timed out",
        )

    # ----------------------------------------------------------------- ending

    def _end(
        self,
        task_id: int,
        status: TaskStatus,
        *,
        result: str | None = None,
        error: str | None = None,
        reason: EndReason | None = None,
    ) -> None:
        """Move a live task to an end state, cancel what it still waits on, free its slot."""
        task = self._tasks[task_id]
        task.status = status
        task.result = result
        task.error = error
        task.end_reason = reason
        task.ended_at = self.clock()
        task.progress = None
        prompt = self._cancel_prompt_of(task)
        task.blocked_reason = None
        task.blocked_on = None
        self._slots.discard(task_id)
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        lease = self._leases.pop(task_id, None)
        if lease is not None:
            lease[1].cancel()
        if prompt is not None:
            self._emit(PromptClosed(task=copy.copy(task), prompt=copy.copy(prompt)))
        else:
            self._emit(TaskChanged(task=copy.copy(task)))
        for waiter in self._end_waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)
        run = self._runs.get(task_id)
        if run is not None:
            # Also the current task, when an agent aborts a subtree holding itself:
            # it then sees CancelledError at its next await.
            run.cancel()
        self._promote()

    def _pending_prompt(self, task: Task) -> Prompt | None:
        if task.blocked_on is None:
            return None
        prompt = self._prompts[task.blocked_on.prompt_id]
        return prompt if prompt.state is PromptState.PENDING else None

    def _cancel_prompt_of(self, task: Task) -> Prompt | None:
        prompt = self._pending_prompt(task)
        if prompt is None:
            return None
        prompt.state = PromptState.CANCELLED
        self._close_prompt(prompt.id, PromptCancelled(f"prompt {prompt.id} was cancelled"))
        return prompt

    def _close_prompt(self, prompt_id: int, outcome: str | BaseException) -> None:
        handle = self._prompt_timers.pop(prompt_id, None)
        if handle is not None:
            handle.cancel()
        future = self._pending.pop(prompt_id, None)
        if future is None or future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
            future.exception()  # nobody may await it (an aborted agent): mark it seen
        else:
            future.set_result(outcome)

    def abort(
        self,
        task_id: int,
        *,
        recursive: bool = True,
        by: str = "user",
        origin: object | None = None,
    ) -> list[int]:
        """End the task (and by default its whole subtree) as failed/aborted.

        Queued tasks end without running, pending prompts are cancelled and running
        agents are cancelled. Aborting an ended task is not an error.

        Returns:
            The ids of the tasks this call ended, parents before children.

        The decision goes through `recorder` first (with `origin`, opaque here).

        Raises:
            UnknownTask: no such task.
            TaskdeckError: the recorder could not write the decision; nothing ended.
        """
        ids = self._subtree_ids(task_id) if recursive else [self._task(task_id).id]
        live = [i for i in ids if not self._tasks[i].status.is_ended]
        what = "subtree" if recursive else "task"
        detail = f"{what}: ended {', '.join(map(str, live))}" if live else f"{what}: nothing live"
        error = f"aborted by {by}"
        if self.recorder is not None:
            tasks, prompts = [], []
            for i in live:
                ended = copy.copy(self._tasks[i])
                pending = self._pending_prompt(ended)
                ended.status, ended.error = TaskStatus.FAILED, error
                ended.end_reason, ended.ended_at, ended.progress = EndReason.ABORTED, self.clock(), None
                ended.blocked_reason = ended.blocked_on = None
                tasks.append(ended)
                if pending is not None:
                    pending = copy.copy(pending)
                    pending.state = PromptState.CANCELLED
                    prompts.append(pending)
            self.recorder(
                "abort", task_id=task_id, prompt_id=None, question=None, detail=detail, by=by,
                origin=origin, affected=live, tasks=tasks, prompts=prompts,
            )
        if not recursive:
            if not live:
                return []
            self._end(task_id, TaskStatus.FAILED, error=error, reason=EndReason.ABORTED)
            return [task_id]
        return self._end_subtree(task_id, error=error, reason=EndReason.ABORTED)

    def _end_subtree(
        self,
        task_id: int,
        *,
        error: str,
        reason: EndReason,
        descendants_error: str | None = None,
    ) -> list[int]:
        """Fail every live task of the subtree; descendants end as aborted."""
        ended: list[int] = []
        # No promotion until the whole subtree has ended: a slot freed by one member
        # must not start a queued member that is about to be ended too.
        self._hold_promotion += 1
        try:
            for i in self._subtree_ids(task_id):
                if self._tasks[i].status.is_ended:
                    continue
                if i == task_id:
                    self._end(i, TaskStatus.FAILED, error=error, reason=reason)
                else:
                    self._end(
                        i,
                        TaskStatus.FAILED,
                        error=descendants_error or error,
                        reason=EndReason.ABORTED,
                    )
                ended.append(i)
        finally:
            self._hold_promotion -= 1
        self._promote()
        return ended

    async def join(self, task_id: int) -> None:
        """Wait until the task's in-process run (and its clean-up) has fully returned."""
        run = self._runs.get(task_id)
        if run is not None:
            await asyncio.gather(run, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every run and timer; used when the daemon stops.

        Queued tasks stay queued: the runs ending here free slots, but nothing new starts.
        Cancelled runs end failed/restarted, as a restart would record them.
        """
        self._closing = True
        self._hold_promotion += 1  # never released: a closed registry starts nothing
        for handle in [*self._timers.values(), *self._prompt_timers.values()]:
            handle.cancel()
        for _, handle in self._leases.values():
            handle.cancel()
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    # ---------------------------------------------------------------- prompts

    def open_prompt(
        self,
        task_id: int,
        question: str,
        *,
        choices: Iterable[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> Prompt:
        """Block the task on a question to a person.

        Raises:
            BadRequest: empty question or choices, or a default that is not a choice.
            InvalidState: the task is not in progress.
        """
        prompt, _ = self._open_prompt(
            task_id, question, choices=choices, timeout=timeout, default=default
        )
        return prompt

    def _open_prompt(
        self,
        task_id: int,
        question: str,
        *,
        choices: Iterable[str] | None,
        timeout: float | None,
        default: str | None,
    ) -> tuple[Prompt, asyncio.Future[str]]:
        task = self._task(task_id)
        if task.status is not TaskStatus.IN_PROGRESS:
            raise InvalidState(f"task {task_id} is {task.status.value}, cannot ask")
        if not question.strip():
            raise BadRequest("question must not be empty")
        options = list(choices) if choices is not None else _DEFAULT_CHOICES
        if not options or any(not c.strip() for c in options):
            raise BadRequest("choices must be non-empty words")
        if len({c.lower() for c in options}) != len(options):
            raise BadRequest("choices must be distinct")
        if timeout is not None and timeout <= 0:
            raise BadRequest("timeout must be positive")
        if default is not None and default not in options:
            raise BadRequest(f"default {default!r} is not one of the choices")
        prompt = Prompt(
            id=self._next_prompt_id,
            task_id=task_id,
            question=question,
            choices=options,
            timeout=timeout,
            default=default,
            created_at=self.clock(),
        )
        self._next_prompt_id += 1
        self._prompts[prompt.id] = prompt
        self._task_prompts[task_id] = (*self._task_prompts.get(task_id, ()), prompt.id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._pending[prompt.id] = future
        if timeout is not None:
            self._prompt_timers[prompt.id] = loop.call_later(
                timeout, self._on_prompt_timeout, prompt.id
            )
        task.status = TaskStatus.BLOCKED
        task.blocked_reason = BlockedReason.PROMPT
        task.blocked_on = BlockedOn(prompt_id=prompt.id, question=question, choices=options)
        self._slots.discard(task_id)
        self._emit(PromptOpened(task=copy.copy(task), prompt=copy.copy(prompt)))
        self._promote()
        return copy.copy(prompt), future

    async def ask(
        self,
        task_id: int,
        question: str,
        *,
        choices: Iterable[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> str:
        """Ask and wait for the answer's text.

        Raises:
            PromptTimedOut: nobody answered in time and there is no default.
            PromptCancelled: the prompt was cancelled.
        """
        prompt = await self.ask_prompt(
            task_id, question, choices=choices, timeout=timeout, default=default
        )
        return prompt.answer or ""

    async def ask_prompt(
        self,
        task_id: int,
        question: str,
        *,
        choices: Iterable[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> Prompt:
        """Ask and wait; returns the answered prompt (answer, reason, who, when).

        Raises:
            PromptTimedOut: nobody answered in time and there is no default.
            PromptCancelled: the prompt was cancelled.
        """
        # Keep the future itself: a listener may answer inside the PromptOpened step,
        # which closes the prompt before this line runs.
        prompt, future = self._open_prompt(
            task_id, question, choices=choices, timeout=timeout, default=default
        )
        await future
        return copy.copy(self._prompts[prompt.id])

    def answer(
        self,
        prompt_id: int,
        text: str,
        *,
        by: str = "user",
        reason: str | None = None,
        origin: object | None = None,
    ) -> Prompt:
        """Deliver an answer to a pending prompt, exactly once, and resume its task.

        Text that matches a choice (ignoring case) becomes that choice; any other
        text is a free answer.

        Returns:
            The answered prompt.

        Raises:
            UnknownPrompt: no such prompt.
            AlreadyAnswered: somebody answered first.
            NotPending: the prompt was cancelled or timed out.
            BadRequest: empty answer.
            TaskdeckError: the recorder could not write the answer; nothing changed.
        """
        prompt = self._prompts.get(prompt_id)
        if prompt is None:
            raise UnknownPrompt(f"no prompt {prompt_id}")
        if prompt.state is PromptState.ANSWERED:
            raise AlreadyAnswered(
                f"prompt {prompt_id} was already answered {prompt.answer!r} by {prompt.answered_by}"
            )
        if prompt.state is not PromptState.PENDING:
            raise NotPending(f"prompt {prompt_id} is {prompt.state.value.replace('_', ' ')}")
        text = text.strip()
        if not text:
            raise BadRequest("answer must not be empty")
        for choice in prompt.choices:
            if choice.lower() == text.lower():
                text = choice
                break
        self._resolve(prompt, text, by=by, reason=reason, origin=origin)
        return copy.copy(prompt)

    def _resolve(
        self, prompt: Prompt, text: str, *, by: str, reason: str | None, origin: object | None
    ) -> None:
        """Answer the prompt: recorded first (when a recorder is set), then applied."""
        task = self._tasks[prompt.task_id]
        answered = copy.copy(prompt)
        answered.state = PromptState.ANSWERED
        answered.answer = text
        answered.reason = reason
        answered.answered_by = by
        answered.answered_at = self.clock()
        if self.recorder is not None:
            resumed = copy.copy(task)
            resumed.status = TaskStatus.IN_PROGRESS
            resumed.blocked_reason = resumed.blocked_on = None
            self.recorder(
                "answer", task_id=task.id, prompt_id=prompt.id, question=prompt.question,
                detail=f"{text}: {reason}" if reason else text, by=by, origin=origin,
                affected=(), tasks=[resumed], prompts=[answered],
            )
        for name in ("state", "answer", "reason", "answered_by", "answered_at"):
            setattr(prompt, name, getattr(answered, name))
        self._resume(task)
        self._emit(PromptClosed(task=copy.copy(task), prompt=copy.copy(prompt)))
        self._close_prompt(prompt.id, text)

    def _resume(self, task: Task) -> None:
        task.status = TaskStatus.IN_PROGRESS
        task.blocked_reason = None
        task.blocked_on = None
        if not task.external:
            self._slots.add(task.id)

    def _on_prompt_timeout(self, prompt_id: int) -> None:
        self._prompt_timers.pop(prompt_id, None)
        prompt = self._prompts[prompt_id]
        if prompt.state is not PromptState.PENDING:
            return
        if prompt.default is not None:
            try:
                self._resolve(prompt, prompt.default, by="timeout", reason="no answer in time",
                              origin=None)
                return
            except Exception as exc:  # unrecorded: the default must not apply; time out instead
                log.error("prompt %d times out without its default answer, which could not "
                          "be recorded: %s", prompt_id, exc)
        prompt.state = PromptState.TIMED_OUT
        task = self._tasks[prompt.task_id]
        self._resume(task)
        self._emit(PromptClosed(task=copy.copy(task), prompt=copy.copy(prompt)))
        self._close_prompt(
            prompt_id, PromptTimedOut(f"nobody answered within {prompt.timeout:g}s")
        )

    # ------------------------------------------------------- progress, tokens

    def add_tokens(self, task_id: int, prompt: int = 0, completion: int = 0) -> Task:
        """Count tokens spent by a live task; each total stops at `MAX_COUNT`.

        Raises:
            BadRequest: negative counts.
            InvalidState: the task has ended.
        """
        if prompt < 0 or completion < 0:
            raise BadRequest("token counts must not be negative")
        task = self._live(task_id)
        if prompt == 0 and completion == 0:
            return copy.copy(task)
        # Saturate: a total past 2^64 could not be encoded, and one bad reporter would
        # wedge every snapshot, list and journal write from then on.
        task.prompt_tokens = min(MAX_COUNT, task.prompt_tokens + prompt)
        task.completion_tokens = min(MAX_COUNT, task.completion_tokens + completion)
        self._emit(TaskChanged(task=copy.copy(task)))
        return copy.copy(task)

    def set_progress(self, task_id: int, text: str | None) -> Task:
        """Show a short line of what the live task is doing now."""
        task = self._live(task_id)
        if task.progress != text:
            task.progress = text
            self._emit(TaskChanged(task=copy.copy(task)))
        return copy.copy(task)

    # ---------------------------------------------------------- sub-task waits

    async def wait(
        self,
        ids: Iterable[int],
        *,
        mode: Literal["all", "any"] = "all",
        timeout: float | None = None,
    ) -> dict[int, Task]:
        """Wait until all (or any) of the tasks end, or the timeout passes.

        Returns:
            The tasks among `ids` that have ended, by id (partial on timeout).

        Raises:
            UnknownTask: an id does not exist.
            BadRequest: an unknown mode.
        """
        if mode not in ("all", "any"):
            raise BadRequest(f"unknown wait mode {mode!r} (all or any)")
        wanted = list(dict.fromkeys(ids))
        for i in wanted:
            self._task(i)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def ended() -> dict[int, Task]:
            return {
                i: copy.copy(self._tasks[i])
                for i in wanted
                if i in self._tasks and self._tasks[i].status.is_ended
            }

        while True:
            done = ended()
            if len(done) == len(wanted) or (mode == "any" and done) or not wanted:
                return done
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return done
            futures = []
            for i in wanted:
                if i not in done:
                    future: asyncio.Future[None] = loop.create_future()
                    self._end_waiters[i].append(future)
                    futures.append(future)
            try:
                await asyncio.wait(
                    futures, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for i, future in zip((i for i in wanted if i not in done), futures):
                    future.cancel()
                    waiters = self._end_waiters.get(i)
                    if waiters is not None and future in waiters:
                        waiters.remove(future)

    def block_on_subtasks(self, task_id: int) -> None:
        """Mark a running task as waiting for its sub-tasks; its slot goes to the queue."""
        task = self._task(task_id)
        if task.status is not TaskStatus.IN_PROGRESS:
            raise InvalidState(f"task {task_id} is {task.status.value}, cannot wait")
        task.status = TaskStatus.BLOCKED
        task.blocked_reason = BlockedReason.SUBTASKS
        self._slots.discard(task_id)
        self._emit(TaskChanged(task=copy.copy(task)))
        self._promote()

    def unblock_from_subtasks(self, task_id: int) -> None:
        """Resume a task that was waiting for its sub-tasks."""
        task = self._task(task_id)
        if task.status is TaskStatus.BLOCKED and task.blocked_reason is BlockedReason.SUBTASKS:
            self._resume(task)
            self._emit(TaskChanged(task=copy.copy(task)))

    # --------------------------------------------------------- external tasks

    def heartbeat(self, task_id: int, *, lease: float | None = None) -> Task:
        """Renew an external task's lease (optionally changing its length)."""
        task = self._live(task_id)
        if not task.external:
            raise InvalidState(f"task {task_id} is not external")
        if lease is not None and lease <= 0:
            raise BadRequest("lease must be positive")
        if lease is not None and lease != task.lease:
            task.lease = lease
            self._emit(TaskChanged(task=copy.copy(task)))
        self._renew_lease(task_id, task.lease or DEFAULT_LEASE)
        return copy.copy(task)

    def _renew_lease(self, task_id: int, lease: float) -> None:
        old = self._leases.pop(task_id, None)
        if old is not None:
            old[1].cancel()
        handle = asyncio.get_running_loop().call_later(lease, self._on_lease_lapsed, task_id)
        self._leases[task_id] = (lease, handle)

    def _on_lease_lapsed(self, task_id: int) -> None:
        lease, _ = self._leases.pop(task_id, (0.0, None))
        task = self._tasks.get(task_id)
        if task is None or task.status.is_ended:
            return
        self._end(
            task_id,
            TaskStatus.FAILED,
            error=f"reporter lost: no heartbeat for {lease:g}s",
            reason=EndReason.LOST,
        )

    def finish(self, task_id: int, result: str = "") -> Task:
        """End an external task with its result."""
        self._external(task_id)
        self._end(task_id, TaskStatus.FINISHED, result=result)
        return copy.copy(self._tasks[task_id])

    def fail(self, task_id: int, error: str) -> Task:
        """End an external task as failed with its error."""
        self._external(task_id)
        self._end(task_id, TaskStatus.FAILED, error=error, reason=EndReason.ERROR)
        return copy.copy(self._tasks[task_id])

    def _external(self, task_id: int) -> Task:
        task = self._live(task_id)
        if not task.external:
            raise InvalidState(f"task {task_id} runs in-process; only its agent ends it")
        return task

    # ---------------------------------------------------------------- restore

    def restore(self, tasks: Iterable[Task], prompts: Iterable[Prompt]) -> None:
        """Load history (e.g. from a journal) into an empty registry, before any event.

        In-process tasks that were live end as failed/restarted; external tasks keep
        their state and a fresh lease of their own length; their pending prompts stay
        pending; prompt and task timeouts run on from where they were.
        """
        if self._tasks or self.seq:
            raise InvalidState("restore needs an empty registry")
        for task in sorted(tasks, key=lambda t: t.id):
            self._tasks[task.id] = task
            self._agent_tasks[task.agent] += 1
            if task.parent_id is not None:
                self._children[task.parent_id].append(task.id)
            self._next_task_id = max(self._next_task_id, task.id + 1)
        loop = asyncio.get_running_loop()
        now = self.clock()
        for prompt in sorted(prompts, key=lambda p: p.id):
            self._prompts[prompt.id] = prompt
            self._task_prompts[prompt.task_id] = (
                *self._task_prompts.get(prompt.task_id, ()),
                prompt.id,
            )
            self._next_prompt_id = max(self._next_prompt_id, prompt.id + 1)
            if prompt.state is PromptState.PENDING:
                self._pending[prompt.id] = loop.create_future()
                if prompt.timeout is not None:  # the clock kept running while we were down
                    left = max(0.0, prompt.created_at + prompt.timeout - now)
                    self._prompt_timers[prompt.id] = loop.call_later(
                        left, self._on_prompt_timeout, prompt.id
                    )
        for task in list(self._tasks.values()):
            if task.status.is_ended:
                continue
            if task.external:
                self._renew_lease(task.id, task.lease or DEFAULT_LEASE)
                if task.timeout is not None:
                    left = max(0.0, (task.started_at or task.created_at) + task.timeout - now)
                    self._timers[task.id] = loop.call_later(left, self._on_timeout, task.id)
            else:
                self._end(
                    task.id,
                    TaskStatus.FAILED,
                    error="daemon restarted while the task ran",
                    reason=EndReason.RESTARTED,
                )

    def evict(self, task_ids: Iterable[int]) -> list[int]:
        """Drop ended subtrees (and their prompts) from memory; the journal keeps them.

        Each id drops its whole subtree, and only when every task in it has ended,
        so no live task is dropped and no kept task loses its parent.

        Returns:
            The ids dropped (each subtree parents first).
        """
        dropped: list[int] = []
        gone: set[int] = set()
        for task_id in task_ids:
            if task_id in gone or task_id not in self._tasks:
                continue
            subtree = self._subtree_ids(task_id)
            if all(self._tasks[i].status.is_ended for i in subtree):
                dropped.extend(i for i in subtree if i not in gone)
                gone.update(subtree)
        if not dropped:
            return []
        for task_id in dropped:
            task = self._tasks.pop(task_id)
            self._agent_tasks[task.agent] -= 1
            self._children.pop(task_id, None)
            if task.parent_id is not None and task.parent_id in self._children:
                siblings = self._children[task.parent_id]
                if task_id in siblings:
                    siblings.remove(task_id)
        for task_id in gone:
            for prompt_id in self._task_prompts.pop(task_id, ()):
                del self._prompts[prompt_id]
        self._emit(TasksEvicted(task_ids=dropped))
        return dropped

    # ---------------------------------------------------------------- helpers

    def _task(self, task_id: int) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTask(f"no task {task_id}") from None

    def _live(self, task_id: int) -> Task:
        task = self._task(task_id)
        if task.status.is_ended:
            raise InvalidState(f"task {task_id} has {task.status.value}")
        return task

    def _subtree_ids(self, task_id: int) -> list[int]:
        self._task(task_id)
        out = []
        stack = [task_id]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(reversed(self._children.get(current, ())))
        return out

    def prompt_to_answer(self, task_id: int, prompt_id: int | None) -> int:
        """The prompt an answer to a task answers: `prompt_id` when it is that task's,
        else the question the task waits on.

        Raises:
            UnknownTask: no such task.
            UnknownPrompt: no such prompt.
            BadRequest: the prompt belongs to another task.
            InvalidState: the task has ended, or waits on no question.
            AlreadyAnswered: its last question is answered and it waits on no other
                (a retry after a restart).
        """
        task = self._task(task_id)
        if prompt_id is not None:
            owner = self.get_prompt(prompt_id).task_id
            if owner != task_id:
                raise BadRequest(f"prompt {prompt_id} belongs to task {owner}, not {task_id}")
            return prompt_id
        if task.blocked_on is not None:
            return task.blocked_on.prompt_id
        if task.status.is_ended:
            raise InvalidState(f"task {task_id} has ended ({task.status.value}); "
                               "there is no question to answer")
        asked = self._task_prompts.get(task_id, ())
        if task.blocked_reason is None and asked:
            last = self._prompts[asked[-1]]
            if last.state is PromptState.ANSWERED:
                raise AlreadyAnswered(
                    f"task {task_id}'s question {last.question!r} (prompt {last.id}) was "
                    f"already answered {last.answer!r} by {last.answered_by}; it waits on no "
                    "other question"
                )
        waits = "its sub-tasks" if task.blocked_reason is not None else "no question"
        raise InvalidState(
            f"task {task_id} is {task.status.value.replace('_', ' ')} and waits on {waits}"
        )

    def check_external(self, task_id: int) -> None:
        """Refuse a reporter's update to a task an in-process agent runs.

        Raises:
            UnknownTask: no such task.
            InvalidState: the task runs in-process.
        """
        if not self._task(task_id).external:
            raise InvalidState(f"task {task_id} runs in-process; only its agent reports on it")


class Subscription:
    """Buffers every event from the moment it is made; iterate with `async for`."""

    def __init__(self, registry: Registry) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._stop = registry.listen(self._queue.put_nowait)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    def drain(self) -> Iterator[Event]:
        """The events buffered so far, without waiting."""
        while not self._queue.empty():
            yield self._queue.get_nowait()

    def close(self) -> None:
        """Stop receiving events."""
        self._stop()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
