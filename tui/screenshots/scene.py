"""A fixed, reproducible task tree served by a real in-process daemon, for screenshots and tests.

Every task follows a script keyed by its description; the clock is a `FakeClock`
moved by hand, so the same scene gives the same screen, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.agents.demo import ToolError
from core.assembly import Assembly
from core.client import Client
from core.context import AgentContext
from core.journal import Journal
from core.model import BlockedReason, TaskStatus
from core.registry import Registry
from core.server import Daemon

T0 = 1_767_225_600.0
"""Midnight, 1 January 2026 UTC: where the fake clock starts."""

Kind = Literal["hold", "ask", "fail", "done", "wait"]


class FakeClock:
    """A clock that moves only when told; callable like `time.time`."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass
class Step:
    """What one task of the scene does."""

    agent: str
    description: str
    kind: Kind
    parent: str | None = None
    """Description of the parent step."""
    question: str = ""
    choices: list[str] | None = None
    tokens: tuple[int, int] = (0, 0)
    progress: str | None = None
    outcome: str = ""
    """Result (done) or error message (fail)."""
    after: float = 5.0
    """Seconds the fake clock moves before this step starts."""
    abort: bool = False
    """Abort the task once it has settled."""


FIX = "Fix flaky test in tests/test_parser.py"
REPRODUCE = "Reproduce the flaky failure with -p no:randomly"
RESEARCH = "Research: compare vector DBs for 10M embeddings"
HEALTH = "printf 'checking disk and services\\n'; sleep 0.5; uname -sr; echo 'all green' # health"

SCENE: tuple[Step, ...] = (
    Step("demo", FIX, "wait", tokens=(3_200, 840), after=0),
    Step("demo", REPRODUCE, "hold", parent=FIX, tokens=(18_400, 5_120),
         progress="editing src/parser.py", after=12),
    Step("demo", "Write tests for tokenizer edge cases", "ask", parent=REPRODUCE,
         question="Run `pytest tests/test_parser.py -x -p no:randomly`?", tokens=(600, 90),
         after=95),
    Step("demo", "Add a regression test for issue #412", "done", parent=FIX,
         tokens=(2_900, 410), outcome="Fixed race in src/tokenizer.py; 4 tests added", after=20),
    Step("demo", RESEARCH, "wait", tokens=(4_100, 1_300), after=30),
    Step("demo", "Survey pgvector HNSW tuning advice", "done", parent=RESEARCH,
         tokens=(22_000, 2_700),
         outcome="Report ready: 4 options compared, pgvector good enough up to 5M", after=8),
    Step("demo", "Summarise Qdrant benchmark results", "fail", parent=RESEARCH,
         tokens=(1_200, 200), outcome="fetching docs.qdrant.tech/benchmarks timed out after 30s",
         after=40),
    Step("demo", "Estimate hosting cost for 10M vectors", "ask", parent=RESEARCH,
         question="Fetch 14 pages from vendor sites?", tokens=(9_800, 3_900), after=61),
    Step("demo", "Investigate memory growth in the ingest worker", "ask",
         question="Which branch should I base the fix on?",
         choices=["main", "release/2.4", "cancel"], tokens=(1_500, 220), after=33),
    Step("demo", "Add rate limiting to the public API", "hold", tokens=(700, 80), abort=True,
         after=14),
    Step("demo", "Write release notes for v2.4 from merged PRs", "done", tokens=(31_000, 2_200),
         outcome="Release notes ready (96 lines)", after=25),
    Step("demo", "Refactor auth middleware to async", "hold", tokens=(5_600, 1_450),
         progress="reworking error handling", after=17),
    Step("shell", HEALTH, "hold", after=9),
)
"""The scene: what `taskdeck demo` shows (its agents, tasks and questions), frozen in five
statuses, three questions, a failure, an abort and a queued task."""


@dataclass
class Scene:
    """A registry, a daemon and the scripted tasks, all in the current event loop.

    Use `connect` (an async context manager factory) as the dashboard's `connect=`:
    entering it starts the daemon and plays the script, then yields a client.
    """

    runtime_dir: Path
    clock: FakeClock = field(default_factory=FakeClock)
    steps: tuple[Step, ...] = SCENE
    heartbeat: float = 1.0
    max_concurrent: int = 2
    client_name: str = "tui"
    journal_path: Path | None = None
    """Keep a journal there, so the daemon answers `history`; None keeps none."""
    deck: Assembly | None = None
    """The registry, its journal and the daemon serving them, while `running`."""
    client: Client | None = None
    ids: dict[str, int] = field(default_factory=dict)
    """Task id by step description."""
    gates: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    """Futures that held tasks wait on; set a result to finish the task."""

    @property
    def registry(self) -> Registry | None:
        """The scene's registry while it runs."""
        return self.deck.registry if self.deck is not None else None

    @property
    def journal(self) -> Journal | None:
        """The scene's journal while it runs (with `journal_path`)."""
        return self.deck.journal if self.deck is not None else None

    @property
    def daemon(self) -> Daemon | None:
        """The daemon while it serves."""
        return self.deck.daemon if self.deck is not None else None

    def make_registry(self, first_id: int = 1) -> Registry:
        """A registry whose agents follow the script."""
        by_desc = {step.description: step for step in self.steps}
        registry = Registry(max_concurrent=self.max_concurrent, clock=self.clock, epoch=1,
                            default_timeout=None, first_id=first_id)

        async def scripted(ctx: AgentContext) -> str:
            step = by_desc.get(ctx.description)
            if step is None:
                return await self.gate(ctx.task_id)
            if step.tokens != (0, 0):
                ctx.add_tokens(*step.tokens)
            if step.progress:
                ctx.progress(step.progress)
            if step.kind == "hold":
                return await self.gate(ctx.task_id)
            if step.kind == "ask":
                answer = await ctx.ask(step.question, choices=step.choices)
                return await self.gate(ctx.task_id) or f"went on after {answer!r}"
            if step.kind == "fail":
                raise ToolError(step.outcome)
            if step.kind == "wait":
                # Wait (holding no slot) until released, then for the live sub-tasks.
                registry.block_on_subtasks(ctx.task_id)
                try:
                    await self.gate(ctx.task_id)
                    kids = [t.id for t in registry.children(ctx.task_id)]
                    await registry.wait(kids)
                finally:
                    registry.unblock_from_subtasks(ctx.task_id)
                return "all sub-tasks ended"
            return step.outcome

        for agent in {step.agent for step in self.steps} | {"worker"}:
            registry.register_agent(agent, scripted)
        return registry

    def gate(self, task_id: int) -> asyncio.Future[str]:
        """The future a held task waits on."""
        if task_id not in self.gates:
            self.gates[task_id] = asyncio.get_running_loop().create_future()
        return self.gates[task_id]

    def release(self, task_id: int, result: str = "") -> None:
        """Let a held task go on (a `wait` step then waits for its sub-tasks)."""
        gate = self.gate(task_id)
        if not gate.done():
            gate.set_result(result)

    async def play(self) -> None:
        """Submit every step in order, each once the one before has settled."""
        registry = self.registry
        assert registry is not None
        for step in self.steps:
            self.clock.advance(step.after)
            parent = self.ids[step.parent] if step.parent is not None else None
            task = registry.submit(step.agent, step.description, parent_id=parent,
                                   created_by=registry.get(parent).agent if parent else "user")
            self.ids[step.description] = task.id
            await _settle(registry, task.id, step)
            if step.abort:
                registry.abort(task.id, by="ops-oncall")
        self.clock.advance(42)

    async def start_daemon(self) -> Daemon:
        """Serve the registry (again, after `stop_daemon`)."""
        assert self.deck is not None
        return await self.deck.start()

    async def stop_daemon(self) -> None:
        """Stop serving; the registry and its tasks live on."""
        if self.deck is not None:
            await self.deck.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Scene]:
        """Registry and daemon up, script played; everything stopped on exit."""
        self.deck = Assembly(self.make_registry, runtime_dir=self.runtime_dir,
                             journal=self.journal_path, heartbeat=self.heartbeat)
        async with self.deck:
            await self.play()
            yield self

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Client]:
        """Start the scene, then yield a dashboard client (for `make_app(connect=...)`)."""
        async with self.running():
            async with Client(self.runtime_dir, client_name=self.client_name) as client:
                self.client = client
                yield client


async def _settle(registry: Registry, task_id: int, step: Step) -> None:
    """Wait until a freshly submitted task reached the state its step leads to."""

    def settled() -> bool:
        task = registry.get(task_id)
        if task.status is TaskStatus.QUEUED:
            return True
        if step.kind == "ask":
            return task.blocked_reason is BlockedReason.PROMPT
        if step.kind == "wait":
            return task.blocked_reason is BlockedReason.SUBTASKS
        if step.kind in ("done", "fail"):
            return task.status.is_ended
        return task.status is TaskStatus.IN_PROGRESS and (
            step.progress is None or task.progress == step.progress
        )

    await wait_for(settled)


async def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll until the condition holds (bounded); the scene and screenshots wait on state, not time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the scene did not settle")
        await asyncio.sleep(0.002)
