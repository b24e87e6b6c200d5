"""Dashboard under load: key press -> screen, event -> row repainted, first full paint.

The dashboard (`tui.app.DeckApp`) runs headless with Textual's `run_test` and a
Pilot, over a real daemon in another process that holds the tasks and streams
token updates. A frame is "on screen" when Textual hands the composed update to
the driver (`App._display`): the rows are rendered by then; only the terminal's own
write is left out, since a headless driver has no terminal.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import Config, Result, growth_row, percentile
from bench.wire import Peer, daemon_only

SIZE = (130, 40)
"""Terminal size of every run."""

KEY_TARGET = 0.050
"""Issue target: key press p99 under 50 ms."""

PAINT_TARGET = 1.0
"""Issue target: first full paint of a 10,000-task tree under 1 s."""

BIG_PAINT_TARGET = 0.5
"""Issue target: first full paint of a 100,000-task tree at most 0.5 s."""

LIVE = 1000
"""Running tasks (the oldest, at the top of the tree) the event stream updates."""

GAP = 0.02
"""Seconds between one key's frame and the next key (a fast typist's pace)."""

PROBE_PHASE = 1 / 30
"""Probes wait a random time up to this (the app's frame) before each token update: a
probe sent right after the previous one was drawn would always land just after a
frame's changes were applied, and measure the longest wait every time."""


class Frames:
    """Notes when frames reach the driver, and resolves waits on the first frame where a condition holds."""

    def __init__(self, app: Any) -> None:
        self.count = 0
        self._waits: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        display = app._display

        def recording(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is None:
                return
            now = time.perf_counter()
            self.count += 1
            if self._waits:
                still = []
                for condition, future in self._waits:
                    if future.done():
                        continue
                    if condition():
                        future.set_result(now)
                    else:
                        still.append((condition, future))
                self._waits = still

        app._display = recording

    def when(self, condition: Callable[[], bool]) -> asyncio.Future[float]:
        """A future set to the perf_counter time of the first frame after which `condition()`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waits.append((condition, future))
        return future


KEY_CHARS = {"enter": "\r"}


def _press(app: Any, key: str) -> None:
    """Send a key the way a terminal driver does, without waiting for the app to go idle.

    (Pilot.press waits for idle, which a dashboard under a steady stream of events
    reaches only now and then: a press would take seconds to return.)
    """
    from textual import events

    event = events.Key(key, KEY_CHARS.get(key, key if len(key) == 1 else None))
    event.set_sender(app)
    app._driver.send_message(event)


async def _until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.002)


async def _dashboard(
    runtime_dir: Any, daemon: Peer | None, keys: int, rate: float, probes: int
) -> dict[str, Any]:
    """Open the dashboard, time its first paint, then keys and events under a stream."""
    from tui.app import make_app
    from tui.widgets.task_tree import TaskTree

    app = make_app(runtime_dir, blink=False)
    frames = Frames(app)
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {}
    start = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        painted = frames.when(lambda: app.ready and app.view.rows is not None)
        await _until(lambda: app.ready or app.failure, 120, "the dashboard to sync")
        if app.failure:
            raise RuntimeError(f"dashboard failed: {app.failure}")
        out["first_paint_s"] = await asyncio.wait_for(painted, 30) - start
        out["rows"] = len(app.view.rows)
        await pilot.pause()
        if daemon is None:
            return out
        tree = app.query_one(TaskTree)
        if rate:
            await loop.run_in_executor(None, daemon.call, "stream_start", rate)
        seq0 = app.seen_seq or 0
        t_stream = time.perf_counter()
        # Keys: j and k in turn; each timed from the key event to the frame showing it.
        key_lat: list[float] = []
        for i in range(keys):
            key = "j" if i % 2 == 0 else "k"
            before = tree.cursor_id
            shown = frames.when(lambda b=before: tree.cursor_id != b)
            t0 = time.perf_counter()
            _press(app, key)
            key_lat.append(await asyncio.wait_for(shown, 10) - t0)
            await asyncio.sleep(GAP)
        # Fold and unfold the first root: the visible rows are rebuilt from the mirror.
        fold_lat: list[float] = []
        first = app.view.rows[0].task_id
        shown = frames.when(lambda: tree.cursor_id == first)
        _press(app, "g")
        await asyncio.wait_for(shown, 10)
        for i in range(max(2, keys // 10)):
            rows_before = len(app.view.rows)
            shown = frames.when(lambda r=rows_before: len(app.view.rows) != r)
            t0 = time.perf_counter()
            _press(app, "enter")
            fold_lat.append(await asyncio.wait_for(shown, 10) - t0)
            await asyncio.sleep(GAP)
        # Events: a token update on a visible running task, until its row is drawn anew.
        event_lat: list[float] = []
        mirror_lat: list[float] = []
        top = round(tree.scroll_offset.y)
        visible = [
            r.task_id
            for r in app.view.rows[top : top + tree.size.height]
            if not app.view.mirror.tasks[r.task_id].status.is_ended
        ]
        phase = random.Random(5)
        for i in range(probes):
            task_id = visible[i % len(visible)]
            row_drawn = _row_drawn(tree, task_id)
            await asyncio.sleep(phase.uniform(0, PROBE_PHASE))
            changed_at, tokens = await loop.run_in_executor(None, daemon.call, "probe", task_id)
            mirror_at = await _mirror_has(app, task_id, tokens)
            drawn_at = await asyncio.wait_for(row_drawn(tokens), 10)
            event_lat.append(drawn_at - changed_at)
            mirror_lat.append(mirror_at - changed_at)
        elapsed = time.perf_counter() - t_stream
        if rate:
            out["streamed"] = await loop.run_in_executor(None, daemon.call, "stream_stop")
        out["events_seen_per_s"] = ((app.seen_seq or 0) - seq0) / elapsed
        out["key_s"] = key_lat
        out["fold_s"] = fold_lat
        out["event_s"] = event_lat
        out["mirror_s"] = mirror_lat
        out["resyncs"] = app.client.resync_count if app.client is not None else 0
    return out


def _row_drawn(tree: Any, task_id: int) -> Callable[[int], asyncio.Future[float]]:
    """Wrap the tree's `render_line` to catch the row of `task_id` drawn with `tokens` or more.

    Returns a function that, given the token count, gives the future of that moment.
    """
    original = type(tree).render_line
    state: dict[str, Any] = {}
    loop = asyncio.get_running_loop()

    def arm(tokens: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = loop.create_future()
        state["tokens"], state["future"] = tokens, future

        def render_line(y: int) -> Any:
            strip = original(tree, y)
            row = y + round(tree.scroll_offset.y)
            rows = tree.view.rows
            if 0 <= row < len(rows) and rows[row].task_id == task_id:
                task = tree.view.mirror.tasks.get(task_id)
                if task is not None and task.prompt_tokens >= tokens and not future.done():
                    future.set_result(time.perf_counter())
                    del tree.render_line  # back to the class's method
            return strip

        tree.render_line = render_line
        return future

    return arm


async def _mirror_has(app: Any, task_id: int, tokens: int) -> float:
    """The time the client's mirror first holds the task with `tokens` (polled every 0.2 ms)."""
    deadline = time.perf_counter() + 10
    while True:
        task = app.view.mirror.tasks.get(task_id)
        if task is not None and task.prompt_tokens >= tokens:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"task {task_id} never reached {tokens} tokens in the mirror")
        await asyncio.sleep(0.0002)


# ------------------------------------------------------------------ baseline


async def _bare_keys(keys: int) -> list[float]:
    """The framework's floor: a one-widget Textual app whose text changes on j / k."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        BINDINGS = [("j", "move(1)", "down"), ("k", "move(-1)", "up")]

        def __init__(self) -> None:
            super().__init__()
            self.row = 0

        def compose(self) -> ComposeResult:
            yield Static("row 0", id="line")

        def action_move(self, delta: int) -> None:
            self.row += delta
            self.query_one("#line", Static).update(f"row {self.row}")

    app = Bare()
    frames = Frames(app)
    out = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for i in range(keys):
            before = app.row
            shown = frames.when(lambda b=before: app.row != b)
            t0 = time.perf_counter()
            _press(app, "j" if i % 2 == 0 else "k")
            out.append(await asyncio.wait_for(shown, 10) - t0)
            await asyncio.sleep(GAP)
    return out


# -------------------------------------------------------------------- driver


def _session(tasks: int, keys: int, rate: float, probes: int) -> dict[str, Any]:
    with daemon_only("ipc") as (daemon, runtime):
        if tasks:
            daemon.call("fill", tasks, min(LIVE, tasks), True)
        return asyncio.run(_dashboard(runtime, daemon if keys else None, keys, rate, probes))


def run(config: Config) -> list[Result]:
    """10,000 tasks and 1,000 events/s: keys, folds, event repaint; first paint by size."""
    tasks = config.dashboard_tasks
    keys = config.dashboard_keys
    probes = max(5, keys // 2)
    loaded = _session(tasks, keys, config.dashboard_rate, probes)
    empty = _session(0, 0, 0, 0)
    bare = asyncio.run(_bare_keys(keys))
    params = {
        "tasks": tasks,
        "rate": config.dashboard_rate,
        "events_seen_per_s": loaded["events_seen_per_s"],
        "keys": keys,
        "size": SIZE,
        "resyncs": loaded["resyncs"],
    }
    results = [
        Result(
            bench="dashboard",
            name=f"first full paint, {tasks:,} tasks",
            unit="s",
            figure=loaded["first_paint_s"],
            baseline=empty["first_paint_s"],
            baseline_name="same app, empty daemon",
            better="lower",
            target=f"< {PAINT_TARGET:g} s",
            met=loaded["first_paint_s"] < PAINT_TARGET,
            params={"tasks": tasks, "rows": loaded["rows"]},
            note="from App start to the first frame with the synced tree",
        )
    ]
    for q in (50, 99):
        figure = percentile(loaded["key_s"], q)
        results.append(
            Result(
                bench="dashboard",
                name=f"key j/k -> screen p{q}, {tasks:,} tasks, {config.dashboard_rate:,.0f} ev/s",
                unit="s",
                figure=figure,
                baseline=percentile(bare, q),
                baseline_name="one-widget Textual app, no load",
                better="lower",
                target=f"p99 < {KEY_TARGET * 1e3:g} ms" if q == 99 else None,
                met=figure < KEY_TARGET if q == 99 else None,
                params=params,
            )
        )
    results.append(
        Result(
            bench="dashboard",
            name=f"key enter (fold, rows rebuilt) -> screen p50, {tasks:,} tasks",
            unit="s",
            figure=percentile(loaded["fold_s"], 50),
            baseline=percentile(bare, 50),
            baseline_name="one-widget Textual app, no load",
            better="lower",
            params={**params, "p99_s": percentile(loaded["fold_s"], 99)},
        )
    )
    for q in (50, 99):
        results.append(
            Result(
                bench="dashboard",
                name=f"event -> row repainted p{q}, under {config.dashboard_rate:,.0f} ev/s",
                unit="s",
                figure=percentile(loaded["event_s"], q),
                baseline=percentile(loaded["mirror_s"], q),
                baseline_name="event -> client mirror",
                better="lower",
                params=params,
                note="frames coalesce changes for 1/30 s by design",
            )
        )
    if not config.quick:
        results.extend(_paint_growth(config))
    return results


PAINT_RUNS = 3
"""First paints (and bare joins) per size; each row gives their median."""


async def _bare_join(runtime_dir: Any) -> float:
    """The late join alone: a bare client, from its start to a synced mirror."""
    from core.client import Client

    start = time.perf_counter()
    async with Client(runtime_dir, client_name="bench") as client:
        await client.start_mirror(lambda changes: None)
        await client.wait_synced(timeout=120)
        return time.perf_counter() - start


def _paints(tasks: int) -> tuple[float, float]:
    """Median first paint and median bare late join over one daemon holding `tasks`, in turn."""
    with daemon_only("ipc") as (daemon, runtime):
        if tasks:
            daemon.call("fill", tasks, min(LIVE, tasks), True)
        paints, joins = [], []
        for _ in range(PAINT_RUNS):
            paints.append(asyncio.run(_dashboard(runtime, None, 0, 0, 0))["first_paint_s"])
            joins.append(asyncio.run(_bare_join(runtime)))
    return statistics.median(paints), statistics.median(joins)


def _paint_growth(config: Config) -> list[Result]:
    """First paint at each size, against the empty app's paint (startup) as the baseline;
    at the largest size also against its floor: that start plus the late join alone."""
    sizes = list(config.sizes)
    measured = [_paints(n) for n in sizes]
    paints = [paint for paint, _ in measured]
    empty, _ = _paints(0)
    results = [
        Result(
            bench="dashboard",
            name=f"first full paint by size: {n:,} tasks",
            unit="s",
            figure=paint,
            baseline=empty,
            baseline_name="same app, empty daemon",
            better="lower",
            target=f"< {BIG_PAINT_TARGET:g} s" if n == 100_000 else None,
            met=paint < BIG_PAINT_TARGET if n == 100_000 else None,
            params={"tasks": n, "late_join_s": join, "runs": PAINT_RUNS},
            note=f"median of {PAINT_RUNS}; a bare client's late join alone {join * 1e3:.0f} ms",
        )
        for n, (paint, join) in zip(sizes, measured, strict=True)
    ]
    paint, join = measured[-1]
    results.append(
        Result(
            bench="dashboard",
            name=f"first full paint, {sizes[-1]:,} tasks, against its floor",
            unit="s",
            figure=paint,
            baseline=empty + join,
            baseline_name="empty app's paint + a bare client's late join",
            better="lower",
            params={"tasks": sizes[-1], "empty_paint_s": empty, "late_join_s": join},
            note="what the dashboard adds per task is figure - baseline",
        )
    )
    # Growth of what the tasks add on top of an empty start, from 10k: at 1k that is
    # within the noise of the start itself (it can even come out below it).
    span = slice(-2, None) if len(sizes) > 2 else slice(None)
    extra = [p - empty for p in paints][span]
    if min(extra) <= 0:
        return results  # the tasks cost less than the noise: no growth to report
    results.append(growth_row("dashboard", "first paint beyond startup, per task",
                              sizes[span], extra, sizes[span]))
    return results
