"""Command round trip: `answer` and `submit` through the client library, p50/p99, vs raw REQ/REP."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from bench import Config, Result, percentile, raw
from bench.wire import SUBMITTED, Peer, daemon_and_client

TARGET = {"sync": 2.0, "async": 2.5}
"""Issue targets, by client path: p50 at most 2x (`SyncClient`) and 2.5x (`Client`) the
blocking echo's, on one core, journal off."""

BASELINE_TRIES = 3
"""Blocking-echo runs per round of ours."""


PATHS = {"async": "Client", "sync": "SyncClient", "mirrored": "Client with a live mirror"}
"""Client paths measured: the async `Client` (agents, bridges), the blocking `SyncClient`
(scripts, one-shot commands such as `taskdeck submit`), and the async `Client` holding
a live mirror (the dashboard, `taskdeck submit --wait`), whose loop also takes in each
request's events while it waits for the reply. The targets judge the first two."""

JUDGED = ("async", "sync")

SUBMIT_ROUND = 500
"""Submits timed between two clean-ups: after each round the daemon aborts the tasks it
submitted (untimed), so it never holds thousands of blocked runs, as no user's does.
Not fewer: the first request of a round, after the pause, is among the slowest, and
20 of them in 2,000 would make the p99."""


SUFFIX = {"sync": "", "async": " (vs asyncio echo)", "reader": " (vs loop-reader echo)"}
NOTES = {
    "sync": "",
    "async": "an event-loop wake-up on each side: the floor of an asyncio daemon and client",
    "reader": "the floor of a daemon on an event loop, as taskdeck's is",
}


def _submits(daemon: Peer, client: Peer, count: int, path: str) -> tuple[list[float], int, int]:
    """`count` sequential submits through `path`, in rounds of `SUBMIT_ROUND` with the
    daemon's clean-up between them; the latencies and the last request and reply sizes."""
    latencies: list[float] = []
    req_size = rep_size = 0
    for done in range(0, count, SUBMIT_ROUND):
        got, req_size, rep_size = client.call("submit", min(SUBMIT_ROUND, count - done), path)
        latencies += got
        daemon.call("end_submitted")
    return latencies, req_size, rep_size


def _measure(config: Config, journal: bool = False, baselines: bool = True,
             paths: tuple[str, ...] = tuple(PATHS)) -> dict[str, Any]:
    """Ours (through the client `paths`), the blocking echo and the asyncio echo, interleaved.

    The best run of each is kept. The judged runs are without the journal (the command
    path itself); with it, each answer also waits for its commit and fsync (see
    bench/durable.py for that path judged against its own floor).
    """
    count = config.roundtrips
    ours: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    base_sync: dict[str, list[float]] = {"answer": [], "submit": []}
    base_async: dict[str, list[float]] = {"answer": [], "submit": []}
    base_reader: dict[str, list[float]] = {"answer": [], "submit": []}
    with daemon_and_client("ipc", journal=journal) as (daemon, client):
        daemon.call("fill", min(config.sizes), 10)
        for _ in range(config.repeats):
            for path in paths:
                got = {
                    "answer": client.call("answer", daemon.call("prompts", count), path),
                    "submit": _submits(daemon, client, count, path),
                }
                for op, (latencies, req_size, rep_size) in got.items():
                    sizes[op] = (req_size, rep_size)
                    ours[path, op] = _better(ours.get((path, op), []), latencies)
            for op, (req_size, rep_size) in sizes.items():
                if not baselines:
                    break
                request, reply = b"r" * req_size, b"a" * rep_size
                for _ in range(BASELINE_TRIES if count >= 100 else 1):  # smoke runs: one
                    base_sync[op] = _better(
                        base_sync[op], raw.reqrep("ipc", request=request, reply=reply, count=count)
                    )
                base_async[op] = _better(
                    base_async[op],
                    raw.reqrep("ipc", request=request, reply=reply, count=count, use_asyncio=True),
                )
                base_reader[op] = _better(
                    base_reader[op],
                    raw.reqrep("ipc", request=request, reply=reply, count=count, reader=True),
                )
    return {"ours": ours, "sizes": sizes, "sync": base_sync, "async": base_async,
            "reader": base_reader}


@contextlib.contextmanager
def _one_core() -> Iterator[None]:
    """Pin this process, and so every process and thread it starts, to one CPU."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run(config: Config) -> list[Result]:
    """Sequential `answer` and `submit` from a client process to a daemon process over ipc.

    Three client paths are measured (`PATHS`). Baselines: a raw REQ/REP echo between
    two processes with requests and replies of the same sizes, in plain blocking code
    (the machine's floor, which the target is judged against) and with both sides in
    asyncio event loops (the floor of any asyncio daemon and client), alternating with
    our runs. `submit` goes to the agent a user submits to (`bench.wire.SUBMITTED`).

    On this VM a blocking echo takes ~17 us when both processes share a core and
    75-90 us when a wake-up crosses vCPUs, and which one a run gets is chance. So
    everything is measured twice: with every process pinned to one core (the same
    placement for ours and the baseline: the judged rows) and free.
    """
    with _one_core():
        pinned = _measure(config)
        journaled = _measure(config, journal=True, baselines=False, paths=JUDGED)
    free = _measure(config, paths=JUDGED)
    echo = "blocking REQ/REP echo, one core"
    results: list[Result] = []
    for path, client_name in PATHS.items():
        for op in ("answer", "submit"):
            req_size, rep_size = pinned["sizes"][op]
            params = {"requests": config.roundtrips, "request_bytes": req_size,
                      "reply_bytes": rep_size, "client": client_name}
            if op == "submit":
                params["agent"] = SUBMITTED
            rows: list[tuple[dict[str, Any], str, float | str, str, str, bool]] = [
                (pinned, "sync", 50, "one core, journal off", echo, path in JUDGED),
                (pinned, "sync", 99, "one core, journal off", echo, False),
                (pinned, "sync", "mean", "one core, journal off", echo, False),
            ]
            if path in JUDGED:
                rows += [
                    ({**pinned, "ours": journaled["ours"]}, "sync", 50, "one core, journal on",
                     echo, False),
                    (free, "sync", 50, "free", "blocking REQ/REP echo, free", False),
                ]
            if path == "async":
                rows.append(
                    (pinned, "async", 50, "one core", "echo, asyncio both sides, one core", False)
                )
            elif path == "sync":
                rows.append((pinned, "reader", 50, "one core",
                             "echo, blocking REQ -> ROUTER on a loop's reader, one core", False))
            for data, kind, q, where, label, judged in rows:
                figure = _statistic(data["ours"][path, op], q)
                base = _statistic(data[kind][op], q)
                stat = "mean" if q == "mean" else f"p{q}"
                results.append(
                    Result(
                        bench="roundtrip",
                        name=f"{op} {stat}, {client_name}, ipc, {where}" + SUFFIX[kind],
                        unit="s",
                        figure=figure,
                        baseline=base,
                        baseline_name=label,
                        better="lower",
                        target=f"ratio <= {TARGET[path]:g}" if judged else None,
                        met=figure / base <= TARGET[path] if judged else None,
                        params={**params, "placement": where},
                        note=NOTES[kind],
                    )
                )
    return results


def _statistic(values: list[float], q: float | str) -> float:
    """The q-th percentile, or with q "mean" the mean: what the work costs on average,
    which no reordering of it (a quick p50 bought with a burst now and then) can hide."""
    return sum(values) / len(values) if q == "mean" else percentile(values, float(q))


def _better(old: list[float], new: list[float]) -> list[float]:
    """The run with the lower median (noise only ever slows a run down)."""
    if not old:
        return new
    return new if percentile(new, 50) < percentile(old, 50) else old
