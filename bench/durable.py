"""Durable answers and many clients at once, on the daemon as `taskdeck serve` runs it.

A person's answer is written to the journal and synced to disk before its "ok"; its
floor is a bare SQLite commit with the same synchronous setting (WAL, FULL) in the same
directory, measured in the same run. Concurrent answers share one sync (group commit),
so twenty answerers must get far more through than one. Ordinary commands from twenty
clients at once are judged against a raw ROUTER echo serving the same twenty clients.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Config, Result, percentile
from bench.crowd import echo_crowd, taskdeck_crowd
from bench.wire import daemon_only

ANSWER_TARGET = 1.5
"""Issue target: `answer` p50 with the journal at most 1.5x a bare durable commit."""

GROUP_TARGET = 10.0
"""Issue target: 20 concurrent answerers get at least 10x one answerer's throughput."""

CROWD_TARGET = 0.5
"""Issue target: 20 clients' command throughput at least half a raw ROUTER echo's."""

CROWD = 20
"""Concurrent clients."""


def bare_commits(count: int) -> list[float]:
    """Seconds per SQLite commit of one row, WAL mode, synchronous=FULL (an fsync each)."""
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        db = sqlite3.connect(Path(tmp) / "bare.sqlite3", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, ts REAL, detail TEXT, record BLOB)")
        record = os.urandom(300)  # about an answered prompt's row
        out = []
        for _ in range(count + max(5, count // 10)):
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO audit(ts, detail, record) VALUES (?, ?, ?)",
                       (time.time(), "approve", record))
            db.execute("COMMIT")
            out.append(time.perf_counter() - t0)
        db.close()
    return out[max(5, count // 10):]


def bare_committer(directory: Path) -> Any:
    """A callable making one bare durable commit (as `bare_commits`) in a file in `directory`.

    Called between answers from the answering thread, it sees the disk at the same
    moments as the answers do: on a shared machine an fsync's cost moves from one minute
    to the next (0.1 to 4 ms here), so separate runs of the two compare the moments.
    """
    db = sqlite3.connect(directory / "bare.sqlite3", isolation_level=None,
                         check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS audit"
               " (id INTEGER PRIMARY KEY, ts REAL, detail TEXT, record BLOB)")
    record = os.urandom(300)

    def commit() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO audit(ts, detail, record) VALUES (?, ?, ?)",
                   (time.time(), "approve", record))
        db.execute("COMMIT")

    return commit


WAL_FRAME = 4096 + 24
"""Bytes a page adds to the WAL: the page and its frame header."""


def wal_pages(count: int) -> tuple[float, float]:
    """(WAL pages one answer's commit appends, the same for a bare commit), medians.

    In process, without sockets: the answer as the daemon handles it (a batch of one,
    `deferred_syncs`) on a fresh journal. Each page is a write and a checksum on the
    answer's path, and WAL bytes its sync waits for.
    """
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        answered = asyncio.run(_answer_pages(Path(tmp) / "journal.sqlite3", count))
        commit = bare_committer(Path(tmp))
        bare = []
        for _ in range(count):
            before = _size(Path(tmp) / "bare.sqlite3-wal")
            commit()
            bare.append(_size(Path(tmp) / "bare.sqlite3-wal") - before)
    return _median_pages(answered), _median_pages(bare)


def _median_pages(grown: list[int]) -> float:
    # A commit after a checkpoint restarts the WAL from its start: it shows no growth.
    return statistics.median(g / WAL_FRAME for g in grown if g > 0)


async def _answer_pages(path: Path, count: int) -> list[int]:
    from core import protocol as p
    from core.journal import Journal
    from core.registry import Registry
    from core.service import CommandService

    journal = Journal.open(path)
    registry = Registry(first_id=journal.next_id())
    journal.attach(registry)
    prompts = [registry.open_prompt(registry.open_external(f"deploy {i}", lease=600).id,
                                    f"Run deploy {i}?").id for i in range(count)]
    journal.write()
    service = CommandService(registry, journal=journal)
    service.start()
    try:
        grown = []
        for n, prompt in enumerate(prompts):
            before = _size(Path(f"{path}-wal"))
            with service.deferred_syncs():
                service.handle([p.encode(p.Request(
                    id=f"answer-{n}", version=p.PROTOCOL_VERSION,
                    body=p.Answer(prompt_id=prompt, text="approve")))])
                service.write()
            grown.append(_size(Path(f"{path}-wal")) - before)
        return grown
    finally:
        service.stop()
        await registry.close()
        journal.close()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _answers(journal: bool, requesters: int, per: int, op: str = "answer") -> dict[str, Any]:
    """A crowd of answerers against a fresh daemon; with "daemon_cpu": the daemon
    process's CPU seconds (user + system, all its threads) per answer, when known."""
    with daemon_only("ipc", journal=journal) as (daemon, runtime):
        ids = daemon.call("prompts", requesters * (per + 1))
        chunks = [ids[i::requesters] for i in range(requesters)]
        before = process_cpu(daemon.process.pid)
        run = taskdeck_crowd(runtime, op, chunks)
        after = process_cpu(daemon.process.pid)
        if before is not None and after is not None:
            run["daemon_cpu"] = (after - before) / (requesters * (per + 1))
        return run


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds a process has used (user + system, all threads); None off Linux.

    On a shared machine the time an answer waits for the disk swings tenfold from one
    minute to the next; the CPU the daemon spends on it does not, so this row shows
    what a change to the daemon's path bought when the latencies cannot.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _paired(run: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(answer latencies, bare commit latencies) of an `answer_paired` run."""
    latencies = run["latencies"]
    return latencies[0::2], latencies[1::2]


def _progress(journal: bool, per: int) -> dict[str, Any]:
    with daemon_only("ipc", journal=journal) as (daemon, runtime):
        daemon.call("fill", CROWD * 10, CROWD)
        live = daemon.call("live")
        return taskdeck_crowd(runtime, "progress", [[task] * (per + 1) for task in live])


def _rate(runs: list[dict[str, Any]]) -> float:
    """One answerer's best answers/s in `answer_paired` runs: answers over the time spent
    answering (the bare commits between them left out)."""
    return max(len(a) / sum(a) for a, _b in map(_paired, runs))


def _best(runs: list[dict[str, Any]], key: str = "rate") -> dict[str, Any]:
    return max(runs, key=lambda r: r[key])


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _lowest_p50(runs: list[list[float]]) -> list[float]:
    return min(runs, key=lambda r: percentile(r, 50))


def run(config: Config) -> list[Result]:
    """Answer latency and group throughput with the journal, and a crowd's command rate.

    Ours and each baseline alternate, `config.repeats` times; the best of each is kept.
    """
    count = config.roundtrips
    per_crowd = max(5, count // CROWD * 2)
    bare: list[list[float]] = []
    one: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    many: list[dict[str, Any]] = []
    progress: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    echo: list[dict[str, Any]] = []
    sizes = _sizes()
    for _ in range(config.repeats):
        bare.append(bare_commits(count))
        one[True].append(_answers(True, 1, count, "answer_paired"))
        one[False].append(_answers(False, 1, count))
        many.append(_answers(True, CROWD, per_crowd))
        for journal in (True, False):
            progress[journal].append(_progress(journal, per_crowd))
        echo.append(echo_crowd(CROWD, per_crowd, *sizes))
    bare_l = _lowest_p50(bare)
    # The judged pair: the answers of the run with the lowest answer p50, and the bare
    # commits made between them (same process, same moments of the disk).
    one_on, bare_paired = min((_paired(r) for r in one[True]),
                              key=lambda pair: percentile(pair[0], 50))
    one_off = _lowest_p50([r["latencies"] for r in one[False]])
    floor = percentile(bare_paired, 50)
    ratios = sorted(percentile(a, 50) / percentile(b, 50) for a, b in map(_paired, one[True]))
    pages, bare_pages = wal_pages(min(count, 500))
    results = [
        _row("answer p50, SyncClient, journal on (as `taskdeck serve`)", percentile(one_on, 50),
             floor, "bare SQLite commit, WAL, synchronous=FULL, between the answers",
             ANSWER_TARGET, "lower", {"answers": count},
             note="ratio per run: " + ", ".join(f"{r:.2f}" for r in ratios)),
        _row("answer p99, SyncClient, journal on", percentile(one_on, 99),
             percentile(bare_paired, 99), "bare SQLite commit p99, between the answers", None,
             "lower", {"answers": count}),
        _row("answer p50, SyncClient, journal off", percentile(one_off, 50), floor,
             "bare SQLite commit, WAL, synchronous=FULL, between the answers", None, "lower",
             {"answers": count}),
        _row("bare SQLite commit p50, alone (not between answers)", percentile(bare_l, 50),
             floor, "bare SQLite commit, between the answers", None, "lower", {"commits": count}),
        # The least a durable answer can cost: its round trip without the journal plus
        # a bare commit. Its ratio is the best the judged ratio could be.
        _row("floor: answer p50 journal off + bare commit p50", percentile(one_off, 50) + floor,
             floor, "bare SQLite commit, WAL, synchronous=FULL, between the answers", None,
             "lower", {"answers": count}),
        _row("WAL pages per answer's commit (in process, median)", pages, bare_pages,
             "WAL pages per bare commit", None, "lower", {"answers": min(count, 500)},
             unit="pages"),
    ]
    single = _rate(one[True])
    group = _best(many)
    cpu_on = _median([r["daemon_cpu"] for r in one[True] if "daemon_cpu" in r])
    cpu_off = _median([r["daemon_cpu"] for r in one[False] if "daemon_cpu" in r])
    cpu_many = _median([r["daemon_cpu"] for r in many if "daemon_cpu" in r])
    if cpu_on and cpu_off:
        results.append(_row("daemon CPU per answer, one answerer, journal on (median of runs)",
                            cpu_on, cpu_off, "the same, journal off", None, "lower",
                            {"answers": count}))
    if cpu_many and cpu_off:
        results.append(_row(f"daemon CPU per answer, {CROWD} answerers, journal on (median)",
                            cpu_many, cpu_off, "one answerer, journal off", None, "lower",
                            {"answerers": CROWD}))
    results.append(_row(
        f"answers/s, {CROWD} answerers at once, journal on", group["rate"], single,
        "one answerer's answers/s, journal on", GROUP_TARGET, "higher",
        {"answerers": CROWD, "per_answerer": per_crowd},
        note=f"p50 {percentile(group['latencies'], 50) * 1e6:.0f} µs, "
             f"p99 {percentile(group['latencies'], 99) * 1e6:.0f} µs",
    ))
    raw = _best(echo)
    for journal in (True, False):
        got = _best(progress[journal])
        lat = got["latencies"]
        results.append(_row(
            f"progress/s, {CROWD} clients at once, journal {'on' if journal else 'off'}",
            got["rate"], raw["rate"], f"raw ROUTER echo, same {CROWD} clients",
            CROWD_TARGET if journal else None, "higher",
            {"clients": CROWD, "per_client": per_crowd, "p50_s": percentile(lat, 50),
             "p99_s": percentile(lat, 99)},
            note=f"p50 {percentile(lat, 50) * 1e6:.0f} µs, p99 {percentile(lat, 99) * 1e6:.0f} µs"
                 f" (echo p99 {percentile(raw['latencies'], 99) * 1e6:.0f} µs)",
        ))
    for journal in (True, False):
        got = _best(progress[journal])
        results.append(_row(
            f"progress p99, {CROWD} clients at once, journal {'on' if journal else 'off'}",
            percentile(got["latencies"], 99), percentile(raw["latencies"], 99),
            f"raw ROUTER echo p99, same {CROWD} clients", None, "lower", {"clients": CROWD},
        ))
    return results


def _sizes() -> tuple[bytes, bytes]:
    """A `progress` request and its reply as taskdeck encodes them (the echo's sizes)."""
    from core import protocol as p
    from core.model import Task, TaskStatus

    request = p.encode(p.Request(id=os.urandom(16).hex(), version=p.PROTOCOL_VERSION,
                                 body=p.Progress(task_id=12345, text="reading the diff")))
    task = Task(id=12345, agent="external", description="summarise chapter 7 of the report",
                status=TaskStatus.IN_PROGRESS, created_at=time.time(), progress="reading the diff")
    reply = p.encode(p.Reply(id=os.urandom(16).hex(), ok=True, result=p.TaskResult(task=task)))
    return request, reply


def _row(name: str, figure: float, baseline: float, baseline_name: str, target: float | None,
         better: str, params: dict[str, Any], note: str = "", unit: str | None = None
         ) -> Result:
    unit = unit or ("s" if better == "lower" else "req/s")
    if target is None:
        met = None
        words = None
    elif better == "lower":
        met, words = figure / baseline <= target, f"ratio <= {target:g}"
    else:
        met, words = figure / baseline >= target, f"ratio >= {target:g}"
    return Result(bench="durable", name=name, unit=unit, figure=figure, baseline=baseline,
                  baseline_name=baseline_name, better=better,  # type: ignore[arg-type]
                  target=words, met=met, params=params, note=note)
