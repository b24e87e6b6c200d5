"""taskdeck's benchmark suite: each figure measured next to its baseline in the same run."""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import platform
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass
class Result:
    """One figure, the baseline it is judged against, and their ratio.

    `ratio` is always figure / baseline. For a throughput ("higher" is better) a
    ratio of 0.5 means half the baseline's rate; for a latency or a size ("lower"
    is better) a ratio of 2.0 means twice the baseline's time or bytes.
    """

    bench: str
    """Which benchmark made it (e.g. "registry")."""
    name: str
    """What was measured, with its size."""
    unit: str
    figure: float
    baseline: float
    baseline_name: str
    """What the baseline is, in a few words."""
    better: Better = "higher"
    target: str | None = None
    """The acceptance target in words (e.g. "ratio >= 0.5", "< 1024 B")."""
    met: bool | None = None
    """Whether the target is met; None when there is none."""
    params: dict[str, Any] = field(default_factory=dict)
    """Sizes and settings the figure was measured with."""
    note: str = ""

    @property
    def ratio(self) -> float:
        """figure / baseline (0 when the baseline is 0)."""
        return self.figure / self.baseline if self.baseline else 0.0

    def to_json(self) -> dict[str, Any]:
        """A plain dict, ratio included, for `--json`."""
        out = asdict(self)
        out["ratio"] = self.ratio
        return out


@dataclass
class Config:
    """Sizes for one run; `quick()` keeps the whole suite under two minutes on 2 cores."""

    quick: bool = False
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    """Tasks held, for the growth rows."""
    registry_ops: int = 20_000
    """submit+finish cycles timed per size."""
    pipeline_events: int = 100_000
    """Events pushed through each pipeline run."""
    roundtrips: int = 2_000
    """Requests timed per round-trip figure."""
    late_join_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    dashboard_tasks: int = 10_000
    dashboard_keys: int = 500
    dashboard_rate: float = 1_000.0
    """Events per second streamed while keys are pressed."""
    repeats: int = 3
    """Runs of each timed section; the best run is kept (noise only ever slows)."""
    hook_runs: int = 60
    """Processes started per hook-cost case (each one a whole `sh -c` hook run)."""

    @classmethod
    def full(cls) -> Config:
        return cls()

    @classmethod
    def quick_mode(cls) -> Config:
        return cls(
            quick=True,
            registry_ops=5_000,
            pipeline_events=30_000,
            roundtrips=2_000,
            late_join_sizes=(1_000, 10_000, 100_000),
            dashboard_keys=200,
            repeats=1,
            hook_runs=30,
        )

    @classmethod
    def tiny(cls) -> Config:
        """Smallest sizes that still exercise every path: for the smoke tests."""
        return cls(
            quick=True,
            sizes=(50, 200),
            registry_ops=100,
            pipeline_events=300,
            roundtrips=20,
            late_join_sizes=(50, 200),
            dashboard_tasks=100,
            dashboard_keys=3,
            dashboard_rate=200.0,
            repeats=1,
            hook_runs=3,
        )


# ------------------------------------------------------------------ statistics


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    """Median of the values (nan when empty)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def growth_exponent(sizes: list[int], costs: list[float]) -> float:
    """Slope of log(cost) over log(size) between the smallest and the largest size.

    1.0 is linear; above ~1.3 the cost grows faster than linear and is a finding.
    """
    if len(sizes) < 2 or costs[0] <= 0 or costs[-1] <= 0:
        return math.nan
    return math.log(costs[-1] / costs[0]) / math.log(sizes[-1] / sizes[0])


SUPERLINEAR = 1.3
"""Growth exponent above which a cost is flagged as growing faster than linear."""


def growth_row(
    bench: str,
    what: str,
    sizes: list[int],
    costs: list[float],
    baseline_costs: list[float],
    *,
    per_item: bool = True,
) -> Result:
    """How a cost grows from the smallest to the largest size, next to the baseline's growth.

    The figure is the growth factor of the cost per item (per task, per op) from the
    smallest size to the largest: 1.0 means the total grows linearly, 100 over a
    1k->100k span means it grows with the square. `per_item=False` says `costs`
    are already per item (e.g. seconds per op with N tasks held). The cost is flagged
    super-linear when the total's exponent passes `SUPERLINEAR`.

    Args:
        bench: benchmark name for the row.
        what: what grows, in words.
        sizes: sizes measured, ascending.
        costs: our cost at each size (total, or per item).
        baseline_costs: the baseline's cost at the same sizes.
        per_item: True when `costs` are totals to divide by size.
    """

    def per(cs: list[float]) -> list[float]:
        return [c / s for c, s in zip(cs, sizes, strict=True)] if per_item else list(cs)

    ours, base = per(costs), per(baseline_costs)
    factor = ours[-1] / ours[0] if ours[0] > 0 else math.nan
    base_factor = base[-1] / base[0] if base[0] > 0 else math.nan
    # Exponent of the cost per item over size: 0 is flat (a linear total).
    exponent = growth_exponent(sizes, ours)
    flagged = exponent > SUPERLINEAR - 1.0
    return Result(
        bench=bench,
        name=f"growth: {what}, {sizes[0]:,}->{sizes[-1]:,}",
        unit="x",
        figure=factor,
        baseline=base_factor,
        baseline_name="baseline's growth",
        better="lower",
        target="not super-linear",
        met=not flagged,
        params={"sizes": sizes, "costs_per_item": ours, "baseline_costs_per_item": base,
                "exponent": exponent},
        note=f"cost per item ~ n^{exponent:.2f}" + (" SUPER-LINEAR" if flagged else ""),
    )


# -------------------------------------------------------------------- machine


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (no extra dependency)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and library versions: printed with every run."""
    import msgspec
    import zmq

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import textual

        textual_version = getattr(textual, "__version__", "")
        if not textual_version:
            from importlib.metadata import version

            textual_version = version("textual")
    except ImportError:
        textual_version = "absent"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "curve": bool(zmq.has("curve")),
        "msgspec": msgspec.__version__,
        "textual": textual_version,
    }


# ------------------------------------------------------------------ processes


def spawn_context() -> multiprocessing.context.SpawnContext:
    """Fresh interpreters for the other side of a pipe (no state inherited by fork)."""
    return multiprocessing.get_context("spawn")


def in_fresh_process(fn: Callable[..., Any], /, *args: Any, timeout: float = 600.0) -> Any:
    """Run `fn(*args)` in a new spawned interpreter and return what it returns.

    Used where a figure must not be skewed by what earlier benchmarks left in this
    process's heap (memory per task), and for the far side of a pipeline.
    """
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn_context()) as pool:
        return pool.submit(fn, *args).result(timeout=timeout)


# -------------------------------------------------------------------- output


def format_number(value: float, unit: str) -> str:
    """Short human form: 12.3k ev/s, 184 µs, 612 B."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if unit == "B":
        if value >= 1 << 20:
            return f"{value / (1 << 20):.1f} MiB"
        return f"{value:.0f} B"
    if unit == "x":
        return f"{value:.2f}x"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M {unit}"
    if value >= 1e4:
        return f"{value / 1e3:.1f}k {unit}"
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def table(results: list[Result]) -> str:
    """The results as a fixed-width text table, one row per figure."""
    head = ("benchmark", "figure", "value", "baseline", "base value", "ratio", "target")
    rows = [head]
    for r in results:
        target = ""
        if r.target:
            target = f"{r.target} {'ok' if r.met else 'MISSED'}" if r.met is not None else r.target
        rows.append(
            (
                r.bench,
                r.name,
                format_number(r.figure, r.unit),
                r.baseline_name,
                format_number(r.baseline, r.unit),
                f"{r.ratio:.2f}",
                target,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results: list[Result]) -> str:
    """The results as a Markdown table, for docs/BENCHMARKS.md."""
    lines = [
        "| benchmark | figure | value | baseline | baseline value | ratio | target |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for r in results:
        target = ""
        if r.target:
            target = f"{r.target} {'✓' if r.met else '✗ missed'}" if r.met is not None else r.target
        lines.append(
            f"| {r.bench} | {r.name} | {format_number(r.figure, r.unit)} | {r.baseline_name} "
            f"| {format_number(r.baseline, r.unit)} | {r.ratio:.2f} | {target} |"
        )
    return "\n".join(lines)
