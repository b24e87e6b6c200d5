"""The `demo` agent: a seeded stand-in for an LLM coding or research agent; the demo's roots."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.context import Agent, AgentContext
from core.errors import BadRequest, TaskdeckError
from core.model import Prompt, Question, TaskStatus

FAIL_RATE = 0.12
"""Share of demo tasks that end in a simulated error."""

SPAWN_CHANCE = (0.6, 0.3)
"""Chance that a task at depth 0, 1, ... splits off sub-tasks (the last value holds deeper)."""

PROMPT_TIMEOUT = 90.0
"""Seconds the demo's optional questions wait before their default applies (not scaled by speed)."""

_SHELL_EXPORT = (
    "printf 'export: users 12408 rows\\n'; sleep 0.5; "
    "printf 'export: orders 88115 rows\\n'; sleep 0.5; "
    "printf 'export: wrote 3 files (41 MB)\\n' # nightly export"
)
_SHELL_CHECK = (
    "printf 'checking disk and services\\n'; sleep 0.5; uname -sr; echo 'all green' # health"
)

DEMO_TASKS: list[tuple[str, str]] = [
    ("demo", "Fix flaky test in tests/test_parser.py"),
    ("demo", "Research: compare vector DBs for 10M embeddings"),
    ("demo", "Refactor auth middleware to async"),
    ("shell", _SHELL_EXPORT),
    ("demo", "Add rate limiting to the public API"),
    ("demo", "Investigate memory growth in the ingest worker"),
    ("shell", _SHELL_CHECK),
    ("demo", "Write release notes for v2.4 from merged PRs"),
]
"""Root tasks `taskdeck demo` submits: (agent, description). Shell commands end in a
comment, so a suffix the workload appends to a description stays harmless."""


# Simulated provider and tool errors; the registry records them as "Name: message".


class RateLimitError(TaskdeckError):
    """The (simulated) model provider refused the request."""

    code = "RATE_LIMITED"


class ContextLengthError(TaskdeckError):
    """The (simulated) prompt outgrew the model's context window."""

    code = "CONTEXT_LENGTH"


class TestsFailed(TaskdeckError):
    """The (simulated) test run still fails after the fix."""

    __test__ = False  # not a pytest test class
    code = "TESTS_FAILED"


class ToolError(TaskdeckError):
    """A (simulated) tool call failed."""

    code = "TOOL_ERROR"


@dataclass(frozen=True)
class _Approval:
    question: str
    doing: str
    skipped: str
    runs_tests: bool = False


@dataclass(frozen=True)
class _Flavor:
    """What a kind of task reads, does, asks and spawns."""

    reads: tuple[str, ...]
    work: tuple[str, ...]
    approvals: tuple[_Approval, ...]
    subtasks: tuple[str, ...]
    results: tuple[str, ...]
    work_error: str
    """Message of the error a failing task raises mid-work; {source} is what it read first."""


_CODE = _Flavor(
    reads=(
        "src/parser.py", "src/tokenizer.py", "tests/test_parser.py", "src/auth/middleware.py",
        "src/api/routes.py", "src/ingest/worker.py", "pyproject.toml", "CHANGELOG.md",
        "src/auth/session.py", "tests/conftest.py",
    ),
    work=(
        "writing patch", "editing src/parser.py", "reworking error handling",
        "updating type hints", "writing tests", "tidying imports", "fixing review nits",
    ),
    approvals=(
        _Approval("Run `pytest -q`?", "running pytest -q", "test run", runs_tests=True),
        _Approval(
            "Run `pytest tests/test_parser.py -x -p no:randomly`?",
            "running pytest tests/test_parser.py", "targeted test run", runs_tests=True,
        ),
        _Approval("Apply patch to src/auth/middleware.py (+84 −61)?", "applying patch", "patch"),
        _Approval("Run `ruff check --fix src/`?", "running ruff", "lint fixes"),
        _Approval("Push branch and open a draft PR?", "pushing branch", "PR"),
    ),
    subtasks=(
        "Write tests for tokenizer edge cases",
        "Reproduce the flaky failure with -p no:randomly",
        "Check call sites of AuthMiddleware",
        "Port session store to asyncio",
        "Update docs for the async middleware",
        "Add a regression test for issue #412",
        "Benchmark request latency before and after",
    ),
    results=(
        "Patched {file} (+{add}/−{rm}), {n} files touched",
        "Fixed race in {file}; {n} tests added",
        "Refactored {file} (+{add}/−{rm}); behaviour unchanged",
    ),
    work_error="edit did not apply cleanly to {source} (hunk 2 of 3)",
)

_RESEARCH = _Flavor(
    reads=(
        "docs.qdrant.tech/benchmarks", "milvus.io/docs/performance", "weaviate.io/blog",
        "pgvector README", "ann-benchmarks.com results", "arxiv 2402.01763",
    ),
    work=(
        "comparing results", "building a comparison table", "cross-checking numbers",
        "drafting findings", "estimating costs",
    ),
    approvals=(
        _Approval("Fetch 14 pages from vendor sites?", "fetching pages", "page fetch"),
        _Approval("Spend ~40k tokens on a deeper summary?", "summarising in depth", "deep summary"),
    ),
    subtasks=(
        "Summarise Qdrant benchmark results",
        "Estimate hosting cost for 10M vectors",
        "Survey pgvector HNSW tuning advice",
    ),
    results=(
        "Recommend Qdrant: p95 {ms} ms at 10M vectors, {x}x cheaper than the managed option",
        "Report ready: {n} options compared, pgvector good enough up to 5M",
        "Shortlist: Qdrant and Milvus; {n} sources cited",
    ),
    work_error="fetching {source} timed out after 30s",
)

_DEBUG = _Flavor(
    reads=(
        "heap profile ingest-worker.prof", "grafana: ingest memory panel",
        "src/ingest/worker.py", "src/ingest/cache.py", "logs/ingest-worker.log",
    ),
    work=(
        "comparing heap snapshots", "tracing allocations", "reading GC stats",
        "narrowing down the leak", "writing a reproduction",
    ),
    approvals=(
        _Approval("Run `py-spy dump --pid 4312` on the worker?", "sampling the worker", "profile"),
        _Approval("Restart ingest-worker-2 with tracemalloc on?", "restarting worker", "restart"),
    ),
    subtasks=(
        "Compare heap snapshots from two runs",
        "Bisect the commit that introduced the leak",
    ),
    results=(
        "Found the cause: unbounded cache in src/ingest/cache.py; fix is a 3-line LRU",
        "Leak traced to retained request bodies ({n} MB/h); patch proposed",
    ),
    work_error="profiler lost the process: {source} rotated under it",
)

_DOCS = _Flavor(
    reads=("git log v2.3..HEAD", "merged PRs (42)", "CHANGELOG.md", "docs/upgrade.md"),
    work=("grouping changes", "drafting sections", "writing upgrade notes", "polishing wording"),
    approvals=(
        _Approval("Post the draft to #releases?", "posting draft", "post"),
        _Approval("Commit CHANGELOG.md?", "committing", "commit"),
    ),
    subtasks=("Collect breaking changes since v2.3", "Write the upgrade guide section"),
    results=(
        "Drafted release notes: {add} PRs in 5 sections",
        "Release notes ready ({add} lines)",
    ),
    work_error="GitHub API returned 502 while listing {source}",
)

_DEPLOY = Question(
    text="Deploy preview to?", choices=["staging", "production", "skip"],
    timeout=PROMPT_TIMEOUT, default="skip",
)
_BRANCH = Question(
    text="Which branch should I base the fix on?", choices=["main", "release/2.4", "cancel"]
)

FREE_TEXT_ANSWERS: dict[str, tuple[str, ...]] = {
    _BRANCH.text: ("hotfix/parser-crash", "develop", "the branch from PR #418"),
    _DEPLOY.text: ("staging-eu", "preview-42"),
}
"""Free-text answers a person might type to the demo's open questions."""

DENIAL_REASONS: tuple[str, ...] = (
    "CI is red, not now",
    "too risky before the release freeze",
    "I'll do this one by hand",
    "costs too much",
)
"""Reasons the automatic answerer gives when it says no."""


def make_demo_agent(*, seed: int = 0, speed: float = 1.0, max_depth: int = 2) -> Agent:
    """A simulated LLM agent: reads, plans, spends tokens, spawns and asks, sometimes fails.

    Each task draws from its own `random.Random` seeded by (seed, task id), so the
    same seed, the same task ids and the same answers replay the same run.

    Args:
        seed: the run's seed.
        speed: how much faster than real time it thinks (a root task takes 10-40 s at 1;
            `math.inf` never sleeps, for tests).
        max_depth: tasks this many levels below the first demo task spawn no more.

    Raises:
        BadRequest: speed is not positive or max_depth is negative.
    """
    if not speed > 0:
        raise BadRequest("speed must be positive")
    if max_depth < 0:
        raise BadRequest("max_depth must not be negative")
    depths: dict[int, int] = {}  # depth of sub-tasks it spawned, until they start; others: 0

    async def demo(ctx: AgentContext) -> str:
        rng = random.Random(f"{seed}:{ctx.task_id}")
        depth = depths.pop(ctx.task_id, 0)
        return await _Run(ctx, rng, speed, depth, max_depth, depths).run()

    demo.__qualname__ = demo.__name__ = "demo"
    return demo


class _Run:
    """One demo task from start to result."""

    def __init__(
        self,
        ctx: AgentContext,
        rng: random.Random,
        speed: float,
        depth: int,
        max_depth: int,
        depths: dict[int, int],
    ) -> None:
        self.ctx = ctx
        self.rng = rng
        self.speed = speed
        self.depth = depth
        self.max_depth = max_depth
        self.depths = depths
        self.flavor = _flavor_of(ctx.description)
        self.notes: list[str] = []

    async def run(self) -> str:
        rng, flavor = self.rng, self.flavor
        fails = rng.random() < FAIL_RATE
        fail_at = rng.choice(("plan", "work", "verify")) if fails else None
        files = rng.sample(flavor.reads, k=rng.randint(1, 3))
        for source in files:
            await self._step(f"reading {source}", prompt=(1500, 9000), completion=(30, 250))
        await self._step("planning", prompt=(2000, 6000), completion=(200, 900))
        if fail_at == "plan":
            raise rng.choice(
                (
                    RateLimitError("provider returned 429 (retry budget exhausted)"),
                    ContextLengthError(
                        f"prompt of {rng.randint(129, 190) * 1024:,} tokens exceeds the "
                        "128k window"
                    ),
                )
            )
        chance = SPAWN_CHANCE[min(self.depth, len(SPAWN_CHANCE) - 1)]
        if self.depth < self.max_depth and rng.random() < chance:
            await self._delegate()
        for _ in range(rng.randint(1, 3)):
            await self._step(rng.choice(flavor.work), prompt=(3000, 12000), completion=(300, 1500))
        if fail_at == "work":
            raise ToolError(flavor.work_error.format(source=files[0]))
        tested = await self._approval()
        if fail_at == "verify":
            if tested:
                raise TestsFailed(f"{rng.randint(1, 5)} tests still failing after 2 attempts")
            raise RateLimitError("provider returned 429")
        roll = rng.random()
        if flavor is _CODE and roll < 0.2:
            await self._deploy_question()
        elif flavor in (_CODE, _DEBUG) and roll < 0.35:
            await self._branch_question()
        await self._step("summarising", prompt=(2000, 5000), completion=(150, 500))
        sources = [f for f in files if f.startswith("src/")]
        summary = rng.choice(flavor.results).format(
            file=sources[0] if sources else "src/parser.py",
            add=rng.randint(8, 180),
            rm=rng.randint(2, 90),
            n=rng.randint(2, 9),
            ms=rng.randint(12, 60),
            x=round(rng.uniform(1.3, 3.5), 1),
        )
        return "; ".join([summary, *self.notes])

    async def _step(
        self, text: str, *, prompt: tuple[int, int], completion: tuple[int, int]
    ) -> None:
        """Show what it does, think for a while, pay for it in tokens."""
        self.ctx.progress(text)
        await asyncio.sleep(self.rng.uniform(0.8, 2.8) / self.speed)
        self.ctx.add_tokens(self.rng.randint(*prompt), self.rng.randint(*completion))

    async def _delegate(self) -> None:
        rng = self.rng
        most = 3 if self.depth == 0 else 2
        most = min(most, len(self.flavor.subtasks))
        wanted = rng.sample(self.flavor.subtasks, k=rng.randint(1, most))
        me = self.ctx.task.agent
        ids = []
        for description in wanted:
            child = self.ctx.spawn(me, description)
            self.depths[child] = self.depth + 1
            ids.append(child)
        self.ctx.progress(f"waiting for {len(ids)} sub-task{'s' if len(ids) > 1 else ''}")
        try:
            done = await self.ctx.wait(ids)
        finally:
            for child in ids:  # a child aborted while queued never started
                self.depths.pop(child, None)
        finished = sum(1 for t in done.values() if t.status is TaskStatus.FINISHED)
        self.notes.append(f"{finished}/{len(ids)} sub-tasks done")
        await self._step("reviewing sub-task results", prompt=(4000, 15000), completion=(200, 800))

    async def _approval(self) -> bool:
        """Ask before a risky step; returns True when tests ran."""
        rng = self.rng
        if rng.random() >= 0.7:
            return False
        approval = rng.choice(self.flavor.approvals)
        answer = await self.ctx.ask(approval.question)
        if answer == "approve":
            await self._step(approval.doing, prompt=(1000, 4000), completion=(50, 300))
            return approval.runs_tests
        if answer == "deny":
            self.notes.append(f"skipped {approval.skipped} (denied)")
            return False
        self.notes.append(f"followed instruction: {_quote(answer)}")
        await self._step("adjusting to instruction", prompt=(2000, 6000), completion=(200, 700))
        return False

    async def _deploy_question(self) -> None:
        answer = await self.ctx.ask(_DEPLOY)
        if answer == "skip":
            self.notes.append("deploy skipped")
            return
        await self._step(f"deploying preview to {answer}", prompt=(500, 2000), completion=(50, 200))
        self.notes.append(f"preview on {answer}")

    async def _branch_question(self) -> None:
        answer = await self.ctx.ask(_BRANCH)
        if answer == "cancel":
            self.notes.append("no branch chosen, patch left unapplied")
            return
        await self._step(f"rebasing onto {answer}", prompt=(1000, 3000), completion=(50, 200))
        self.notes.append(f"based on {answer}")


def _flavor_of(description: str) -> _Flavor:
    text = description.lower()
    if any(w in text for w in ("investigate", "memory", "leak", "heap", "profile")):
        return _DEBUG
    if any(w in text for w in ("research", "compare", "summarise", "survey", "estimate")):
        return _RESEARCH
    if any(w in text for w in ("release notes", "docs", "changelog", "upgrade guide",
                               "breaking changes")):
        return _DOCS
    return _CODE


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def auto_answer(prompt: Prompt, rng: random.Random) -> tuple[str, str | None]:
    """Pick an answer for the headless demo, as a busy but agreeable person would.

    Mostly the first choice; sometimes a middle choice, sometimes the choice that
    refuses (`Prompt.denial_among`, wherever it is listed) with a reason; free text where
    the question invites it. A reason for a denial never goes with a choice that approves.

    Returns:
        (answer text, reason or None).
    """
    choices: Sequence[str] = prompt.choices or ("approve", "deny")
    roll = rng.random()
    free = FREE_TEXT_ANSWERS.get(prompt.question)
    if free and roll < 0.25:
        return rng.choice(free), None
    if len(choices) > 2 and roll < 0.4:
        return rng.choice(list(choices[1:-1])), None
    if len(choices) >= 2 and roll > 0.85:
        reason = rng.choice(DENIAL_REASONS)  # drawn either way: the seeded run stays the same
        denial = Prompt.denial_among(list(choices))
        if denial is not None:
            return denial, reason
    return choices[0], None
