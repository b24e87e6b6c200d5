"""The task registry: a state machine that emits one numbered event per change.

Over 600 lines: each move updates tasks, prompts, slots and timers together, in one class.

It knows nothing of sockets or screens, nor of asyncio tasks. Every status change
goes through the table in `core.lifecycle`; every timestamp and timer comes from
the injected clock (`core.clock`); in-process agents run in `core.runner`, which
the registry tells of its decisions. What it holds, and every read of it, is
`core.records`; its events go out through `core.feed`. Callers (the server, tests,
agents through `AgentContext`) call its methods; listeners receive every `Event`
synchronously, in the same step as the change, so a snapshot and the event stream
always agree.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
import secrets
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from core.clock import Scheduler, Timer, as_scheduler
from core.context import Agent, as_question
from core.errors import (
    AlreadyAnswered,
    BadRequest,
    InvalidState,
    NotPending,
    UnknownAgent,
    UnknownPrompt,
    UnknownRule,
)
from core.feed import Feed, Listener, Subscription
from core.lifecycle import Step, move
from core.model import (
    DEFAULT_CHOICES,
    MAX_COUNT,
    Action,
    BlockedOn,
    BlockedReason,
    EndReason,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Question,
    Snapshot,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
    TaskStatus,
    Tree,
    Verdict,
)
from core.policy import Effect, Rule, Rulebook, Ruling, check_pattern
from core.records import Records
from core.runner import Runner

__all__ = ["DEFAULT_LEASE", "DEFAULT_TIMEOUT", "Agent", "Registry", "Subscription"]

log = logging.getLogger(__name__)

Recorder = Callable[..., None]
"""Writes a decision before it is applied: `recorder(action, *, task_id, prompt_id,
question, summary, detail, by, origin, affected, tasks, prompts)`, `tasks` and `prompts`
being copies as the decision leaves them; raising refuses the decision (`Journal.record`)."""

DEFAULT_TIMEOUT = 300.0
"""Seconds an in-process task may run (blocked time included) before it fails."""

DEFAULT_LEASE = 30.0
"""Seconds an external task lives without a heartbeat before it fails as lost."""

_DEFAULT_CHOICES = list(DEFAULT_CHOICES)
"""One list shared by every prompt that declares no choices (choices are never mutated)."""


class Registry(Records):
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
        clock: Scheduler | Callable[[], float] | None = None,
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
        self.scheduler: Scheduler = as_scheduler(clock)
        """Where every timestamp and timer comes from (a bare function: timestamps only)."""
        self._now = self.scheduler.now
        self._feed = Feed(epoch if epoch is not None else secrets.randbits(62), self._now)
        self._emit = self._feed.emit
        super().__init__(first_id=first_id)
        self._agents: dict[str, Agent] = dict(agents or {})
        self._queue: collections.deque[int] = collections.deque()
        self._slots: set[int] = set()
        self._timers: dict[int, Timer] = {}
        self._prompt_timers: dict[int, Timer] = {}
        self._leases: dict[int, tuple[float, Timer]] = {}
        self._runner = Runner(self, self.scheduler, self._returned)
        self._hold_promotion = 0
        self._closing = False
        self.recorder: Recorder | None = None
        """When set, every decision (answer, abort, a timeout's default) is written
        through it before it changes anything; a decision it cannot write is refused."""
        self.rules = Rulebook()
        """Approval rules, consulted when a question with an action opens."""

    @property
    def clock(self) -> Callable[[], float]:
        """The timestamp function: `registry.clock()` is now, as the registry writes it."""
        return self._now

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

    def _knows_agent(self, name: str) -> bool:
        return name in self._agents or super()._knows_agent(name)

    # -------------------------------------------------------------- listeners

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every future event; returns a function that stops it."""
        return self._feed.listen(listener)

    def subscribe(self) -> Subscription:
        """An async iterator over every future event, with an unbounded buffer."""
        return Subscription(self._feed)

    @property
    def epoch(self) -> int:
        """Names this registry's event stream: a client seeing it change starts over."""
        return self._feed.epoch

    @property
    def seq(self) -> int:
        """Number of the last event: the state as of now."""
        return self._feed.seq

    # ---------------------------------------------------------------- queries

    def snapshot(self, *, copies: bool = True) -> Snapshot:
        """Every task and pending prompt, and the seq they reflect.

        `copies=False` hands out the registry's own task objects, for a caller that
        encodes them before anything can change them (the daemon's reply): copying
        was a third of the daemon's side of a large late join.
        """
        tasks = self._tasks.values()
        return Snapshot(
            epoch=self.epoch,
            seq=self.seq,
            tasks=[copy.copy(t) for t in tasks] if copies else list(tasks),
            prompts=self.pending_prompts(),
        )

    def tasks_by_id(self) -> Mapping[int, Task]:
        """The registry's own tasks by id, in id order, read-only and live: for a caller
        that reads them before anything can change them (the daemon's compact snapshot)."""
        return types.MappingProxyType(self._tasks)

    def tree(self) -> Tree:
        """The root ids and the child ids of each parent (leaves left out), all in id
        order: the registry's own lists, for a caller that encodes them at once.

        Roots are found by a pass over the tasks (2-10 ms at 100,000): an index kept
        of them cost 50 B per root task held, against a target of 1 KiB per task.
        """
        return Tree(roots=[t.id for t in self._tasks.values() if t.parent_id is None],
                    children={parent: kids for parent, kids in self._children.items() if kids})

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
        task = self._create(Task(
            id=self._next_task_id,
            agent=agent,
            description=description,
            parent_id=parent_id,
            created_by=created_by,
            session_id=session_id,
            timeout=timeout if timeout is not None else self.default_timeout,
            created_at=self._now(),
        ))
        self._queue.append(task.id)
        self._promote()
        return task.__copy__()

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
        key: str | None = None,
    ) -> Task:
        """Add a task whose work happens elsewhere; it is in progress at once.

        Its reporter keeps it alive with `heartbeat` at least every `lease` seconds.
        With a `key` that a live task was opened with, that task comes back instead
        (its lease renewed, nothing else changed): a reporter that is a new process
        each time, such as a hook, finds its session's task again.
        """
        if lease <= 0:
            raise BadRequest("lease must be positive")
        if not agent:
            raise BadRequest("agent name must not be empty")
        if key is not None:
            if not key.strip():
                raise BadRequest("key must not be blank")
            found = self.find_key(key)
            if found is not None:
                self._renew_lease(found.id, found.lease or lease)
                return found
        task = self._create(Task(
            id=self._next_task_id,
            agent=agent,
            description=description,
            parent_id=parent_id,
            created_by=created_by,
            session_id=session_id,
            timeout=timeout,
            external=True,
            key=key,
            created_at=self._now(),
        ))
        task.lease = lease
        move(task, Step.START)
        task.started_at = self._now()
        self._emit(TaskCreated(task=copy.copy(task)))
        self._arm_timeout(task, task.timeout)
        self._renew_lease(task.id, lease)
        return copy.copy(task)

    def _create(self, task: Task) -> Task:
        """Add a new task, built by the caller with the next id: checked, then held
        (and announced, unless external: `open_external` announces it started).

        The caller builds the `Task` itself: passing its fields on as keywords cost a
        submit two argument dicts (docs/BENCHMARKS.md, "the daemon's CPU per submit").
        """
        if not str(task.description).strip():
            raise BadRequest("description must not be empty")
        parent_id = task.parent_id
        if parent_id is not None and self._task(parent_id).status.is_ended:
            raise InvalidState(f"parent task {parent_id} has ended")
        if task.session_id is None:
            task.session_id = f"{task.agent}-{task.id}"
        self._add_task(task)
        if not task.external:
            self._emit(TaskCreated(task=task.__copy__()))
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
        move(task, Step.START)
        task.started_at = self._now()
        self._slots.add(task.id)
        self._emit(TaskChanged(task=task.__copy__()))
        self._arm_timeout(task, task.timeout)
        self._runner.start(task.id, self._agents[task.agent])

    def _returned(self, task_id: int, result: object, error: BaseException | None) -> None:
        """An agent's run returned, raised or was cancelled: end its task if still live."""
        task = self._tasks.get(task_id)
        if task is None or task.status.is_ended:
            return
        if isinstance(error, asyncio.CancelledError):
            if self._closing:  # the daemon stops under it
                self._end(task_id, Step.FAIL, error="daemon stopped while the task ran",
                          reason=EndReason.RESTARTED)
            else:  # cancelled from outside us
                self._end(task_id, Step.FAIL, error="cancelled", reason=EndReason.ABORTED)
        elif error is not None:
            self._end(task_id, Step.FAIL, error=_describe(error), reason=EndReason.ERROR)
        else:
            self._end(task_id, Step.FINISH, result="" if result is None else str(result))

    def _arm_timeout(self, task: Task, seconds: float | None) -> None:
        if seconds is not None:
            self._timers[task.id] = self.scheduler.call_later(
                seconds, lambda: self._on_timeout(task.id)
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
        step: Literal[Step.FINISH, Step.FAIL],
        *,
        result: str | None = None,
        error: str | None = None,
        reason: EndReason | None = None,
    ) -> None:
        """Move a live task to an end state, cancel what it still waits on, free its slot."""
        task = self._tasks[task_id]
        prompt = self._pending_prompt(task)
        _close(task, step, result=result, error=error, reason=reason, at=self._now())
        if prompt is not None:
            prompt.state = PromptState.CANCELLED
            self._close_prompt(prompt)
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
        self._runner.ended(task_id)
        self._promote()

    def _close_prompt(self, prompt: Prompt) -> None:
        """Stop a closed prompt's timer and wake whoever awaits it."""
        handle = self._prompt_timers.pop(prompt.id, None)
        if handle is not None:
            handle.cancel()
        self._pending.discard(prompt.id)
        self._runner.closed(prompt)

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
                _close(ended, Step.FAIL, error=error, reason=EndReason.ABORTED, at=self._now())
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
            self._end(task_id, Step.FAIL, error=error, reason=EndReason.ABORTED)
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
                    self._end(i, Step.FAIL, error=error, reason=reason)
                else:
                    self._end(
                        i,
                        Step.FAIL,
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
        await self._runner.join(task_id)

    def hold_wakeups(self) -> None:
        """Until `release_wakeups`, decisions wake no in-process agent: the daemon holds
        them while a batch's decisions wait for their commit."""
        self._runner.hold()

    def release_wakeups(self, unrecorded: str | None = None) -> None:
        """Wake the agents the held decisions resume; with `unrecorded` (why their commit
        failed) an asker whose prompt was answered gets `Unrecorded`, not the answer."""
        self._runner.release(unrecorded)

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
        await self._runner.close()

    # ---------------------------------------------------------------- prompts

    def open_prompt(
        self,
        task_id: int,
        question: Question | str,
        *,
        choices: Sequence[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> Prompt:
        """Block the task on a question to a person (text and keywords still accepted).

        Raises:
            BadRequest: empty question or choices, or a default that is not a choice.
            InvalidState: the task is not in progress.
        """
        asked = as_question(question, choices=choices, timeout=timeout, default=default)
        prompt, _ = self._open_prompt(task_id, asked, awaited=False)
        return copy.copy(prompt)

    def _open_prompt(
        self, task_id: int, question: Question, *, awaited: bool
    ) -> tuple[Prompt, Awaitable[None] | None]:
        task = self._task(task_id)
        if task.status is not TaskStatus.IN_PROGRESS:
            raise InvalidState(f"task {task_id} is {task.status.value}, cannot ask")
        if not question.text.strip():
            raise BadRequest("question must not be empty")
        options = list(question.choices) if question.choices is not None else _DEFAULT_CHOICES
        if options is not _DEFAULT_CHOICES:  # the defaults are known good: not checked again
            if not options or any(not c.strip() for c in options):
                raise BadRequest("choices must be non-empty words")
            if len({c.lower() for c in options}) != len(options):
                raise BadRequest("choices must be distinct")
        timeout, default = question.timeout, question.default
        if timeout is not None and timeout <= 0:
            raise BadRequest("timeout must be positive")
        if default is not None and default not in options:
            raise BadRequest(f"default {default!r} is not one of the choices")
        prompt = Prompt(
            id=self._next_prompt_id,
            task_id=task_id,
            question=question.text,
            choices=options,
            timeout=timeout,
            default=default,
            created_at=self._now(),
            action=question.action,
        )
        move(task, Step.BLOCK)
        task.blocked_reason = BlockedReason.PROMPT
        task.blocked_on = BlockedOn(
            prompt_id=prompt.id, question=question.text, choices=options,
            summary=question.action.summary if question.action is not None else None,
        )
        self._slots.discard(task_id)
        self._add_prompt(prompt)
        # Made before the prompt is announced: a listener may answer it in that very step.
        answered = self._runner.expect(prompt.id) if awaited else None
        self._arm_prompt_timeout(prompt.id, timeout)
        self._emit(PromptOpened(task=copy.copy(task), prompt=copy.copy(prompt)))
        if prompt.action is not None and len(self.rules):
            self._decide_by_rules(prompt)
        self._promote()
        return prompt, answered

    def _arm_prompt_timeout(self, prompt_id: int, seconds: float | None) -> None:
        if seconds is not None:
            self._prompt_timers[prompt_id] = self.scheduler.call_later(
                seconds, lambda: self._on_prompt_timeout(prompt_id)
            )

    async def ask(self, task_id: int, question: Question) -> str:
        """Ask and wait for the answer's text.

        Raises:
            PromptTimedOut: nobody answered in time and there is no default.
            PromptCancelled: the prompt was cancelled.
        """
        return (await self.ask_prompt(task_id, question)).answer or ""

    async def ask_prompt(self, task_id: int, question: Question) -> Prompt:
        """Ask and wait; returns the answered prompt (answer, reason, who, when).

        Raises:
            PromptTimedOut: nobody answered in time and there is no default.
            PromptCancelled: the prompt was cancelled.
        """
        prompt, answered = self._open_prompt(task_id, question, awaited=True)
        await answered  # type: ignore[misc]
        return copy.copy(prompt)

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
        self._apply_answer(prompt, self._record_answer(prompt, text, by=by, reason=reason,
                                                       origin=origin))

    def _record_answer(
        self, prompt: Prompt, text: str, *, by: str, reason: str | None, origin: object | None,
        rules: Sequence[Rule] = (),
    ) -> Prompt:
        """The prompt as `text` answers it, written by the recorder; nothing applied yet."""
        task = self._tasks[prompt.task_id]
        answered = copy.copy(prompt)
        answered.state = PromptState.ANSWERED
        answered.answer = text
        answered.reason = reason
        answered.answered_by = by
        answered.answered_at = self._now()
        if self.recorder is not None:
            resumed = copy.copy(task)
            _unblock(resumed)
            self.recorder(
                "answer", task_id=task.id, prompt_id=prompt.id, question=prompt.question,
                summary=prompt.action.summary if prompt.action is not None else None,
                detail=f"{text}: {reason}" if reason else text, by=by, origin=origin,
                affected=(), tasks=[resumed], prompts=[answered],
                **({"rules": list(rules)} if rules else {}),
            )
        return answered

    def _apply_answer(self, prompt: Prompt, answered: Prompt) -> None:
        task = self._tasks[prompt.task_id]
        self._resume(task)
        for name in ("state", "answer", "reason", "answered_by", "answered_at"):
            setattr(prompt, name, getattr(answered, name))
        self._emit(PromptClosed(task=copy.copy(task), prompt=copy.copy(prompt)))
        self._close_prompt(prompt)

    def _resume(self, task: Task) -> None:
        _unblock(task)
        if not task.external:
            self._slots.add(task.id)

    def _on_prompt_timeout(self, prompt_id: int) -> None:
        self._prompt_timers.pop(prompt_id, None)
        prompt = self._prompts[prompt_id]
        if prompt.state is not PromptState.PENDING:
            return
        if prompt.default is not None:
            try:
                answered = self._record_answer(prompt, prompt.default, by="timeout",
                                               reason="no answer in time", origin=None)
            except Exception as exc:  # unrecorded: the default must not apply; time out instead
                log.error("prompt %d times out without its default answer, which could not "
                          "be recorded: %s", prompt_id, exc)
            else:
                self._apply_answer(prompt, answered)
                return
        task = self._tasks[prompt.task_id]
        self._resume(task)
        prompt.state = PromptState.TIMED_OUT
        self._emit(PromptClosed(task=copy.copy(task), prompt=copy.copy(prompt)))
        self._close_prompt(prompt)

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

        def ended() -> dict[int, Task]:
            return {
                i: copy.copy(self._tasks[i])
                for i in wanted
                if i in self._tasks and self._tasks[i].status.is_ended
            }

        return await self._runner.wait(wanted, ended, mode=mode, timeout=timeout)

    def block_on_subtasks(self, task_id: int) -> None:
        """Mark a running task as waiting for its sub-tasks; its slot goes to the queue."""
        task = self._task(task_id)
        if task.status is not TaskStatus.IN_PROGRESS:
            raise InvalidState(f"task {task_id} is {task.status.value}, cannot wait")
        move(task, Step.BLOCK)
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
        handle = self.scheduler.call_later(lease, lambda: self._on_lease_lapsed(task_id))
        self._leases[task_id] = (lease, handle)

    def _on_lease_lapsed(self, task_id: int) -> None:
        lease, _ = self._leases.pop(task_id, (0.0, None))
        task = self._tasks.get(task_id)
        if task is None or task.status.is_ended:
            return
        self._end(
            task_id,
            Step.FAIL,
            error=f"no word from its reporter for {_span(lease)}: its lease lapsed",
            reason=EndReason.LOST,
        )

    def finish(self, task_id: int, result: str = "") -> Task:
        """End an external task with its result."""
        self._external(task_id)
        self._end(task_id, Step.FINISH, result=result)
        return copy.copy(self._tasks[task_id])

    def fail(self, task_id: int, error: str) -> Task:
        """End an external task as failed with its error."""
        self._external(task_id)
        self._end(task_id, Step.FAIL, error=error, reason=EndReason.ERROR)
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
        self._load(tasks, prompts)
        now = self._now()
        for prompt_id in sorted(self._pending):
            prompt = self._prompts[prompt_id]
            if prompt.timeout is not None:  # the clock kept running while we were down
                left = max(0.0, prompt.created_at + prompt.timeout - now)
                self._arm_prompt_timeout(prompt.id, left)
        for task in list(self._tasks.values()):
            if task.status.is_ended:
                continue
            if task.external:
                self._renew_lease(task.id, task.lease or DEFAULT_LEASE)
                if task.timeout is not None:
                    left = max(0.0, (task.started_at or task.created_at) + task.timeout - now)
                    self._arm_timeout(task, left)
            else:
                self._end(
                    task.id,
                    Step.FAIL,
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
        dropped = self._drop(task_ids)
        if not dropped:
            return []
        self._emit(TasksEvicted(task_ids=dropped))
        return dropped


    # ------------------------------------------------------------------ rules

    def add_rule(
        self,
        effect: Effect | str,
        pattern: str,
        *,
        agent: str | None = None,
        task_id: int | None = None,
        session: str | None = None,
        expires: float | None = None,
        everything: bool = False,
        by: str = "user",
        origin: object | None = None,
    ) -> Rule:
        """Add an approval rule, recorded like a decision, and let it decide the pending
        questions it covers (the other rules still apply: a deny keeps winning).

        Args:
            expires: seconds from now until it stops deciding; None: never.
            everything: consent to a pattern that matches every use of its tool.

        Raises:
            BadRequest: an unknown effect, a malformed pattern, both a session and a task,
                a non-positive expiry, or an everything-pattern without `everything`.
            UnknownTask: the task scope names no task.
            TaskdeckError: the recorder could not write it; no rule was added.
        """
        try:
            effect = Effect(effect)
        except ValueError:
            raise BadRequest(f"unknown rule effect {effect!r} (allow, deny or ask)") from None
        parsed = check_pattern(pattern, everything=everything)
        if session is not None and task_id is not None:
            raise BadRequest("a rule has one scope: a session or a task, not both")
        if expires is not None and not expires > 0:
            raise BadRequest("a rule's expiry must be a positive number of seconds")
        if task_id is not None:
            self._task(task_id)
        now = self._now()
        rule = Rule(
            id=self.rules.next_id, effect=effect, pattern=parsed.text, agent=agent or None,
            task_id=task_id, session=session or None, added_by=by, added_at=now,
            expires_at=now + expires if expires is not None else None,
        )
        self._record_rule("rule_add", rule, by=by, origin=origin)
        self.rules.add(rule)
        for prompt_id in sorted(self._pending):
            prompt = self._prompts[prompt_id]
            if prompt.action is not None and prompt.state is PromptState.PENDING:
                self._decide_by_rules(prompt)
        return copy.copy(self.rules.get(rule.id) or rule)

    def remove_rule(self, rule_id: int, *, by: str = "user", origin: object | None = None) -> Rule:
        """Remove a rule, recorded like a decision.

        Raises:
            UnknownRule: no rule of that id.
            TaskdeckError: the recorder could not write it; the rule stays.
        """
        held = self.rules.get(rule_id)
        if held is None:
            raise UnknownRule(f"no rule {rule_id} (see `taskdeck rules ls`)")
        removed = msgspec.structs.replace(held, removed_at=self._now())
        self._record_rule("rule_remove", removed, by=by, origin=origin)
        self.rules.remove(rule_id)
        return removed

    def list_rules(self) -> list[Rule]:
        """Every rule in force or expired, by id."""
        return [copy.copy(rule) for rule in self.rules.rules()]

    def test_rules(self, action: Action, *, task_id: int | None = None) -> Ruling:
        """What the rules would say of `action` asked by `task_id` (or by no task), now.

        Raises:
            UnknownTask: no such task.
        """
        lineage = self._lineage(self._task(task_id)) if task_id is not None else ()
        return self.rules.decide(action, lineage=lineage, now=self._now())

    def restore_rules(self, rules: Iterable[Rule], next_id: int = 1) -> None:
        """Hold the rules a journal kept; new rules get ids from `next_id` on."""
        for rule in rules:
            self.rules.add(rule)
        self.rules.next_id = max(self.rules.next_id, next_id)

    def _record_rule(self, action: str, rule: Rule, *, by: str, origin: object | None) -> None:
        if self.recorder is not None:
            self.recorder(
                action, task_id=rule.task_id, prompt_id=None, question=None, summary=None,
                detail=rule.describe(), by=by, origin=origin, affected=(), tasks=[], prompts=[],
                rules=[rule],
            )

    def _lineage(self, task: Task) -> list[int]:
        """The task's id and its ancestors' ids: what a subtree rule's task must be among."""
        ids = [task.id]
        parent = task.parent_id
        while parent is not None and parent not in ids:
            ids.append(parent)
            found = self._tasks.get(parent)
            parent = found.parent_id if found is not None else None
        return ids

    def _decide_by_rules(self, prompt: Prompt) -> None:
        """Close a question with an action by rule, when a rule decides it; else leave it
        to a person (also when the decision cannot be recorded, or the question's choices
        have no plain approve or deny)."""
        assert prompt.action is not None
        task = self._tasks[prompt.task_id]
        now = self._now()
        ruling = self.rules.decide(prompt.action, lineage=self._lineage(task), now=now)
        if not ruling.rules:
            return
        used = []
        for rule_id in ruling.rules:
            rule = self.rules.get(rule_id)
            if rule is not None:
                used.append(msgspec.structs.replace(rule, hits=rule.hits + 1, last_used=now))
        text = _rule_answer(prompt, ruling.effect)
        if not ruling.decides or text is None:
            for rule in used:  # an ask rule's hit: it sent the question to a person
                self.rules.update(rule)
            return
        by = ("rule " if len(used) == 1 else "rules ") + ", ".join(str(r.id) for r in used)
        verb = "approved" if ruling.effect is Effect.ALLOW else "denied"
        reason = f"{verb} by {by}: {'; '.join(r.pattern for r in used)}"
        try:
            answered = self._record_answer(prompt, text, by=by, reason=reason, origin=None,
                                           rules=used)
        except Exception as exc:  # noqa: BLE001 -- whatever failed, a person decides instead
            log.error("prompt %d stays with a person: its decision by %s could not be "
                      "recorded: %s", prompt.id, by, exc)
            return
        for rule in used:
            self.rules.update(rule)
        self._apply_answer(prompt, answered)


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
        asked = self._prompt_ids(task_id)
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


# The two changes a recorded decision makes, applied alike to the live task and to the
# copy the recorder writes first, so the journal holds exactly what the registry applies.


def _close(
    task: Task,
    step: Literal[Step.FINISH, Step.FAIL],
    *,
    at: float,
    result: str | None = None,
    error: str | None = None,
    reason: EndReason | None = None,
) -> None:
    """End the task: its outcome, when, and nothing left running or waited on."""
    move(task, step)
    task.result, task.error, task.end_reason = result, error, reason
    task.ended_at, task.progress = at, None
    task.blocked_reason = task.blocked_on = None


def _unblock(task: Task) -> None:
    """Resume a blocked task: it waits on nothing any more."""
    move(task, Step.RESUME)
    task.blocked_reason = task.blocked_on = None


def _rule_answer(prompt: Prompt, effect: Effect | None) -> str | None:
    """The choice a rule's effect stands for: approve is the first choice (when it approves),
    deny is the choice that refuses (`Prompt.denial_among`); None when there is no such one."""
    choices = prompt.choices
    if effect is Effect.ALLOW:
        first = choices[0]
        approves = Prompt.judge(choices, first) is Verdict.APPROVED
        return first if approves and len(choices) >= 2 else None
    if effect is Effect.DENY:
        return Prompt.denial_among(choices)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _span(seconds: float) -> str:
    """A lease as a person reads it: "30 min", "90s", "0.6s"."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g}s"
