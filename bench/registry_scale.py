"""Registry scale in process: submit+finish ops/s and memory per task with many tasks held."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench import Config, Result, growth_row, in_fresh_process, rss_bytes

WAVE = 64
"""Tasks submitted per wave: the concurrency limit, so every submit starts at once."""

BYTES_TARGET = 1024
"""Issue target: under 1 KiB per finished task."""


async def _noop(ctx: Any) -> str:
    return "ok"


async def _ask_once(ctx: Any) -> str:
    return await ctx.ask("Run `pytest -q`?")


async def _ask_leave(ctx: Any) -> str:
    """Asks leave to run a shell command, as a bridge of a coding agent does."""
    from core.model import Action, Question

    action = Action(agent="claude", tool="Bash", cwd="/home/dev/project",
                    session="5f0c2a1e-8d4b-4c1e-9a57-3b2e6f1d0c44",
                    input={"command": f"pytest -q tests/test_part_{ctx.task_id}.py",
                           "description": "Run the part's tests"})
    return await ctx.ask(Question(text="Run `pytest`?", action=action))


def _description(i: int) -> str:
    return f"summarise chapter {i} of the report"


# ------------------------------------------------------------ taskdeck side


async def _run_waves(registry: Any, count: int, agent: str = "noop") -> float:
    """Submit `count` in-process tasks, WAVE at a time, each wave awaited; returns seconds."""
    start = time.perf_counter()
    done = 0
    while done < count:
        n = min(WAVE, count - done)
        wave = [registry.submit(agent, _description(done + i)).id for i in range(n)]
        await asyncio.gather(*(registry.join(task_id) for task_id in wave))
        done += n
    return time.perf_counter() - start


def _run_external(registry: Any, count: int) -> float:
    """open_external + finish `count` times (no agent coroutine); returns seconds."""
    start = time.perf_counter()
    for i in range(count):
        task = registry.open_external(_description(i))
        registry.finish(task.id, "ok")
    return time.perf_counter() - start


async def _registry_main(held: int, ops: int, repeats: int, with_prompts: bool,
                         with_rows: bool = False, with_action: bool = False) -> dict[str, Any]:
    from core.model import PromptOpened
    from core.registry import Registry
    from core.rows import RowCache

    registry = Registry(max_concurrent=WAVE,
                        agents={"noop": _noop, "ask": _ask_once, "leave": _ask_leave})
    if with_prompts:
        loop = asyncio.get_running_loop()

        def answer(event: Any) -> None:
            if isinstance(event.body, PromptOpened):
                loop.call_soon(registry.answer, event.body.prompt.id, "approve")

        registry.listen(answer)
    rows = RowCache()
    if with_rows:  # as the daemon does: each ended task's row kept for protocol 2 snapshots
        rows.follow(registry)
    gc.collect()
    rss0 = rss_bytes()
    agent = ("leave" if with_action else "ask") if with_prompts else "noop"
    fill_s = await _run_waves(registry, held, agent)
    gc.collect()
    rss1 = rss_bytes()
    out: dict[str, Any] = {
        "held": len(registry),
        "fill_s": fill_s,
        "bytes_per_task": (rss1 - rss0) / max(held, 1),
        "rows_kept": len(rows),
    }
    if with_prompts or with_rows:
        return out
    inproc = min([await _run_waves(registry, ops) for _ in range(repeats)])
    external = min(_run_external(registry, ops) for _ in range(repeats))
    out["inproc_ops_s"] = ops / inproc
    out["external_ops_s"] = ops / external
    await registry.close()
    return out


def registry_child(held: int, ops: int, repeats: int, with_prompts: bool = False,
                   with_rows: bool = False, with_action: bool = False) -> dict[str, Any]:
    """Entry point in a fresh process: fill `held` finished tasks, then time `ops` cycles.

    With `with_prompts` each task asks a question (with `with_action`, leave for a shell
    command), with `with_rows` the daemon's snapshot rows are kept as tasks end; either
    returns after the memory figure.
    """
    return asyncio.run(_registry_main(held, ops, repeats, with_prompts, with_rows,
                                      with_action))


async def _burst_main(count: int) -> float:
    from core.registry import Registry

    registry = Registry(max_concurrent=4, agents={"noop": _noop})
    ended = asyncio.Event()
    last = count  # ids start at 1

    def on_event(event: Any) -> None:
        task = getattr(event.body, "task", None)
        if task is not None and task.id == last and task.status.is_ended:
            ended.set()

    registry.listen(on_event)
    start = time.perf_counter()
    for i in range(count):
        registry.submit("noop", _description(i))
    await ended.wait()
    elapsed = time.perf_counter() - start
    await registry.close()
    return elapsed


def burst_child(count: int) -> float:
    """Submit `count` tasks at once to a limit of 4 and wait until the last has ended."""
    return asyncio.run(_burst_main(count))


# ------------------------------------------------------------ baseline side


async def _floor_main(held: int, ops: int, repeats: int) -> dict[str, Any]:
    """The least a registry can do: a Task record in a dict, and a coroutine run per task."""
    from core.model import Task, TaskStatus

    tasks: dict[int, Task] = {}
    next_id = 1

    def make(i: int) -> Task:
        nonlocal next_id
        now = time.time()
        task = Task(
            id=next_id,
            agent="noop",
            description=_description(i),
            session_id=f"noop-{next_id}",
            created_at=now,
        )
        tasks[task.id] = task
        next_id += 1
        return task

    def end(task: Task, result: str) -> None:
        task.status = TaskStatus.FINISHED
        task.result = result
        task.ended_at = time.time()

    async def run(task: Task) -> None:
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = time.time()
        end(task, await _noop(None))

    async def waves(count: int) -> float:
        start = time.perf_counter()
        done = 0
        loop = asyncio.get_running_loop()
        while done < count:
            n = min(WAVE, count - done)
            runs = [loop.create_task(run(make(done + i))) for i in range(n)]
            await asyncio.gather(*runs)
            done += n
        return time.perf_counter() - start

    def external(count: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            end(make(i), "ok")
        return time.perf_counter() - start

    gc.collect()
    rss0 = rss_bytes()
    await waves(held)
    gc.collect()
    rss1 = rss_bytes()
    inproc = min([await waves(ops) for _ in range(repeats)])
    ext = min(external(ops) for _ in range(repeats))
    return {
        "bytes_per_task": (rss1 - rss0) / max(held, 1),
        "inproc_ops_s": ops / inproc,
        "external_ops_s": ops / ext,
    }


def floor_child(held: int, ops: int, repeats: int) -> dict[str, Any]:
    """Entry point in a fresh process for the baseline."""
    return asyncio.run(_floor_main(held, ops, repeats))


async def _bare_burst_main(count: int) -> float:
    """Baseline for a burst: a FIFO of ids, 4 slots, one asyncio Task per id, started in order."""
    import collections

    loop = asyncio.get_running_loop()
    queue: collections.deque[int] = collections.deque(range(count))
    done = asyncio.Event()
    running = 0

    def start_more() -> None:
        nonlocal running
        while queue and running < 4:
            queue.popleft()
            running += 1
            loop.create_task(_noop(None)).add_done_callback(finished)

    def finished(_: asyncio.Task[str]) -> None:
        nonlocal running
        running -= 1
        if not queue and not running:
            done.set()
        start_more()

    start = time.perf_counter()
    start_more()
    await done.wait()
    return time.perf_counter() - start


def bare_burst_child(count: int) -> float:
    return asyncio.run(_bare_burst_main(count))


# -------------------------------------------------------------------- driver


def _memory_row(name: str, figure: float, floor: float, params: dict[str, Any], note: str,
                *, judged: bool = True) -> Result:
    """A bytes-per-task row against bare Task Structs, judged against the 1 KiB target."""
    return Result(
        bench="registry", name=name, unit="B", figure=figure, baseline=floor,
        baseline_name="bare Task Structs in a dict", better="lower",
        target=f"< {BYTES_TARGET} B" if judged else None,
        met=figure < BYTES_TARGET if judged else None, params=params, note=note,
    )


def run(config: Config) -> list[Result]:
    """Every registry figure, each size in its own fresh process."""
    results: list[Result] = []
    inproc_costs: list[float] = []
    external_costs: list[float] = []
    inproc_floor: list[float] = []
    external_floor: list[float] = []
    for held in config.sizes:
        ours = in_fresh_process(registry_child, held, config.registry_ops, config.repeats)
        floor = in_fresh_process(floor_child, held, config.registry_ops, config.repeats)
        params = {"held": held, "ops": config.registry_ops, "limit": WAVE}
        inproc_costs.append(1 / ours["inproc_ops_s"])
        external_costs.append(1 / ours["external_ops_s"])
        inproc_floor.append(1 / floor["inproc_ops_s"])
        external_floor.append(1 / floor["external_ops_s"])
        results.append(
            Result(
                bench="registry",
                name=f"submit+finish, in-process agent, {held:,} held",
                unit="ops/s",
                figure=ours["inproc_ops_s"],
                baseline=floor["inproc_ops_s"],
                baseline_name="Task in dict + bare coroutine",
                params=params,
            )
        )
        results.append(
            Result(
                bench="registry",
                name=f"open+finish, external task, {held:,} held",
                unit="ops/s",
                figure=ours["external_ops_s"],
                baseline=floor["external_ops_s"],
                baseline_name="Task in dict, fields set",
                params=params,
            )
        )
        judged = held == max(config.sizes)
        results.append(_memory_row(f"memory per finished task, {held:,} held",
                                   ours["bytes_per_task"], floor["bytes_per_task"], params,
                                   "RSS delta / tasks, fresh process", judged=judged))
        if judged:
            kept = in_fresh_process(registry_child, held, 0, 1, False, True)
            if kept["rows_kept"] != held:
                raise RuntimeError(f"{kept['rows_kept']} rows kept for {held} ended tasks")
            results.append(_memory_row(
                f"memory per finished task, snapshot rows kept, {held:,} held",
                kept["bytes_per_task"], floor["bytes_per_task"], params,
                "the daemon's protocol 2 row of each ended task, kept as it ends"))
    held = max(config.sizes)
    prompted = in_fresh_process(registry_child, held, 0, 1, True)
    floor = in_fresh_process(floor_child, held, 0, 1)
    results.append(_memory_row(
        f"memory per finished task that asked one question, {held:,} held",
        prompted["bytes_per_task"], floor["bytes_per_task"], {"held": held},
        "its answered Prompt kept as history, packed once its block has closed"))
    prompted = in_fresh_process(registry_child, held, 0, 1, True, True)
    results.append(_memory_row(
        f"memory per finished task that asked one question, snapshot rows kept, {held:,} held",
        prompted["bytes_per_task"], floor["bytes_per_task"], {"held": held},
        "its Prompt kept as history (packed), and the daemon's protocol 2 row of it"))
    prompted = in_fresh_process(registry_child, held, 0, 1, True, True, True)
    results.append(_memory_row(
        f"memory per finished task that asked leave for a shell command, snapshot rows kept, "
        f"{held:,} held",
        prompted["bytes_per_task"], floor["bytes_per_task"], {"held": held},
        "a bridge's question: an Action with its command, cwd and session, packed"))
    # Growth: per-op cost with the number of tasks held, and a burst submitted at once.
    sizes = list(config.sizes)
    results.append(
        growth_row("registry", "in-process op cost vs tasks held", sizes, inproc_costs,
                   inproc_floor, per_item=False)
    )
    results.append(
        growth_row("registry", "external op cost vs tasks held", sizes, external_costs,
                   external_floor, per_item=False)
    )
    burst_sizes = [s for s in sizes if s <= 20_000] or sizes[:1]
    if len(burst_sizes) < 2:
        burst_sizes = sorted({sizes[0], sizes[0] * 4})
    burst = [in_fresh_process(burst_child, n) for n in burst_sizes]
    bare = [in_fresh_process(bare_burst_child, n) for n in burst_sizes]
    for n, ours_s, bare_s in zip(burst_sizes, burst, bare, strict=True):
        results.append(
            Result(
                bench="registry",
                name=f"burst: {n:,} submitted at once, limit 4, drained",
                unit="s",
                figure=ours_s,
                baseline=bare_s,
                baseline_name="FIFO, 4 slots, asyncio Task each",
                better="lower",
                params={"count": n},
            )
        )
    results.append(
        growth_row("registry", "burst drain time per task vs burst size", burst_sizes, burst, bare)
    )
    return results
