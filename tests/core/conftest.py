"""Shared fixtures for the registry tests: a remote-controlled agent and an event recorder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest

from core.clock import ManualClock
from core.context import AgentContext
from core.lifecycle import MOVES
from core.mirror import Mirror
from core.model import Event, PromptClosed, PromptOpened, TaskChanged, TaskCreated, TaskStatus
from core.registry import Registry

Step = Callable[[AgentContext], Awaitable[Any]]

ALLOWED = {(before, after) for (before, _), after in MOVES.items()}
"""Status changes the table of moves allows, whatever the step."""


async def until(condition: Callable[[], object], *, timeout: float = 5.0, what: str = "") -> None:
    """Let the loop run until `condition` holds: no delay between checks, bounded in time.

    Everything these tests wait for happens inside the loop (no process, no socket), so
    each check only needs the loop to take its next turns; time itself moves by the clock.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0)


class Puppet:
    """An agent that does nothing on its own: the test tells each task what to do next.

    Each task's coroutine waits for commands; `run` makes it await a step (e.g. an
    `ask`) and hands back a future with what the step returned or raised; `finish`
    and `fail` end the agent. Starts and cancellations are recorded, so a test can
    check that a queued task never ran and that a running one really saw
    `CancelledError`.
    """

    name = "puppet"

    def __init__(self) -> None:
        self.started: list[int] = []
        """Task ids whose agent coroutine began, in order."""
        self.cancelled: list[int] = []
        """Task ids whose agent coroutine saw CancelledError."""
        self.ready: set[int] = set()
        """Task ids whose agent waits for its next command."""
        self._inbox: dict[int, asyncio.Queue[tuple[str, Any, asyncio.Future[Any] | None]]] = {}

    def _queue(self, task_id: int) -> asyncio.Queue[tuple[str, Any, asyncio.Future[Any] | None]]:
        return self._inbox.setdefault(task_id, asyncio.Queue())

    async def __call__(self, ctx: AgentContext) -> str:
        task_id = ctx.task_id
        self.started.append(task_id)
        queue = self._queue(task_id)
        try:
            while True:
                self.ready.add(task_id)
                kind, arg, reply = await queue.get()
                self.ready.discard(task_id)
                if kind == "finish":
                    return arg
                if kind == "fail":
                    raise arg
                assert reply is not None
                try:
                    value = await arg(ctx)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 -- handed to the test, which asserts on it
                    reply.set_exception(exc)
                    reply.exception()
                else:
                    reply.set_result(value)
        except asyncio.CancelledError:
            self.cancelled.append(task_id)
            raise
        finally:
            self.ready.discard(task_id)

    def run(self, task_id: int, step: Step) -> asyncio.Future[Any]:
        """Make the task's agent await `step(ctx)`; the future gets its outcome."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.ready.discard(task_id)
        self._queue(task_id).put_nowait(("run", step, reply))
        return reply

    def finish(self, task_id: int, result: str = "done") -> None:
        """Make the task's agent return `result`."""
        self.ready.discard(task_id)
        self._queue(task_id).put_nowait(("finish", result, None))

    def fail(self, task_id: int, error: BaseException) -> None:
        """Make the task's agent raise `error`."""
        self.ready.discard(task_id)
        self._queue(task_id).put_nowait(("fail", error, None))


class Recorder:
    """Listens to every event and checks, on each one, the rules that must hold at all times.

    - seq goes up by exactly one, the epoch never changes;
    - a task's status changes only by a move of `core.lifecycle.MOVES`;
    - a queued task only starts while in-process `in_progress` tasks are within the limit;
      the count may grow past the limit only when a blocked task resumes (the
      documented over-commit), which is remembered in `overcommitted`.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.events: list[Event] = []
        self.status: dict[int, TaskStatus] = {}
        self.overcommitted = False
        self.running = 0
        self.errors: list[str] = []
        self.stop = registry.listen(self._on_event)

    def _on_event(self, event: Event) -> None:
        try:
            self._check(event)
        except AssertionError as exc:  # listeners' errors are swallowed: keep them for the test
            self.errors.append(str(exc))
        self.events.append(event)

    def _check(self, event: Event) -> None:
        if self.events:
            last = self.events[-1]
            assert event.seq == last.seq + 1, f"seq {last.seq} then {event.seq}"
            assert event.epoch == last.epoch, "epoch changed"
        body = event.body
        if not isinstance(body, (TaskCreated, TaskChanged, PromptOpened, PromptClosed)):
            return
        task = body.task
        before = self.status.get(task.id)
        self.status[task.id] = task.status
        if before is not None and before is not task.status:
            assert (before, task.status) in ALLOWED, f"task {task.id}: {before} -> {task.status}"
        running = sum(
            1
            for t in self.registry.list(limit=None)
            if t.status is TaskStatus.IN_PROGRESS and not t.external
        )
        limit = self.registry.max_concurrent
        if before is TaskStatus.QUEUED and task.status is TaskStatus.IN_PROGRESS:
            assert running <= limit, f"task {task.id} started with {running} running"
        grew, self.running = running > self.running, running
        if running > limit and grew:
            assert before is TaskStatus.BLOCKED and task.status is TaskStatus.IN_PROGRESS, (
                f"{running} running (limit {limit}) after seq {event.seq}, not a resume"
            )
            self.overcommitted = True

    def assert_clean(self) -> None:
        """Fail with every rule an event broke."""
        assert not self.errors, self.errors

    def of(self, kind: type, task_id: int | None = None) -> list[Event]:
        """Recorded events of one body type (optionally about one task)."""
        return [
            e
            for e in self.events
            if isinstance(e.body, kind)
            and (task_id is None or getattr(e.body, "task", None) is not None and e.body.task.id == task_id)
        ]

    async def wait_for(self, predicate: Callable[[Event], bool], *, timeout: float = 5.0) -> Event:
        """The first recorded event (past or future) that matches `predicate`."""
        found: list[Event] = []

        def match() -> bool:
            found.extend(e for e in self.events if predicate(e))
            return bool(found)

        await until(match, timeout=timeout, what="a matching event")
        return found[0]


def mirror_state(mirror: Mirror) -> tuple[Any, Any]:
    """Tasks and pending prompts of a mirror, as plain data sorted by id."""
    tasks = [msgspec.to_builtins(mirror.tasks[i]) for i in sorted(mirror.tasks)]
    prompts = [msgspec.to_builtins(mirror.prompts[i]) for i in sorted(mirror.prompts)]
    return tasks, prompts


def registry_state(registry: Registry) -> tuple[Any, Any]:
    """Tasks and pending prompts of the registry, as plain data sorted by id."""
    snap = registry.snapshot()
    tasks = [msgspec.to_builtins(t) for t in sorted(snap.tasks, key=lambda t: t.id)]
    prompts = [msgspec.to_builtins(p) for p in sorted(snap.prompts, key=lambda p: p.id)]
    return tasks, prompts


async def settle(registry: Registry, puppet: Puppet) -> None:
    """Wait until every in-process run has caught up with the registry's state.

    Every in-progress puppet task waits for a command, and every ended task's run
    has returned.
    """
    for task in registry.list(limit=None):
        if task.status.is_ended and not task.external:
            await registry.join(task.id)
    await until(
        lambda: all(
            t.id in puppet.ready
            for t in registry.list(status=TaskStatus.IN_PROGRESS, limit=None)
            if t.agent == Puppet.name
        ),
        what="every running puppet to wait for a command",
    )


@pytest.fixture
def puppet() -> Puppet:
    return Puppet()


@pytest.fixture
def clock() -> ManualClock:
    """The registry's time: tests move it with `clock.advance`, never by sleeping."""
    return ManualClock()


@pytest.fixture
async def registry(puppet: Puppet, clock: ManualClock) -> AsyncIterator[Registry]:
    """A registry with a limit of two, no default timeout, the puppet agent and a manual clock."""
    reg = Registry(
        max_concurrent=2, default_timeout=None, epoch=42, agents={Puppet.name: puppet}, clock=clock
    )
    try:
        yield reg
    finally:
        await reg.close()


@pytest.fixture
def recorder(registry: Registry) -> Iterator[Recorder]:
    rec = Recorder(registry)
    yield rec
    rec.stop()
    rec.assert_clean()
