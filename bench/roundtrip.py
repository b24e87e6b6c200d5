"""Command round trip: `answer` and `submit` through the client library, p50/p99, vs raw REQ/REP."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from bench import Config, Result, percentile, raw
from bench.wire import daemon_and_client

TARGET = {"sync": 2.0, "async": 2.5}
"""Issue targets, by client path: p50 at most 2x (`SyncClient`) and 2.5x (`Client`) the
blocking echo's, on one core, journal off."""

BASELINE_TRIES = 3
"""Blocking-echo runs per round of ours."""


PATHS = {"async": "Client", "sync": "SyncClient"}
"""Client paths measured: the async `Client` (dashboard, agents) and the blocking
`SyncClient` (scripts, one-shot commands)."""


SUFFIX = {"sync": "", "async": " (vs asyncio echo)", "reader": " (vs loop-reader echo)"}
NOTES = {
    "sync": "",
    "async": "an event-loop wake-up on each side: the floor of an asyncio daemon and client",
    "reader": "the floor of a daemon on an event loop, as taskdeck's is",
}


def _measure(config: Config, journal: bool = False, baselines: bool = True) -> dict[str, Any]:
    """Ours (both client paths), the blocking echo and the asyncio echo, interleaved.

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
            for path in PATHS:
                use_sync = path == "sync"
                got = {
                    "answer": client.call("answer", daemon.call("prompts", count), use_sync),
                    "submit": client.call("submit", count, use_sync),
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

    Both client paths are measured: the async `Client` and the blocking `SyncClient`.
    Baselines: a raw REQ/REP echo between two processes with requests and replies of
    the same sizes, in plain blocking code (the machine's floor, which the target is
    judged against) and with both sides in asyncio event loops (the floor of any
    asyncio daemon and client), alternating with our runs.

    On this VM a blocking echo takes ~17 us when both processes share a core and
    75-90 us when a wake-up crosses vCPUs, and which one a run gets is chance. So
    everything is measured twice: with every process pinned to one core (the same
    placement for ours and the baseline: the judged rows) and free.
    """
    with _one_core():
        pinned = _measure(config)
        journaled = _measure(config, journal=True, baselines=False)
    free = _measure(config)
    results: list[Result] = []
    for path, client_name in PATHS.items():
        for op in ("answer", "submit"):
            req_size, rep_size = pinned["sizes"][op]
            params = {"requests": config.roundtrips, "request_bytes": req_size,
                      "reply_bytes": rep_size, "client": client_name}
            rows = [
                (pinned, "sync", 50, "one core, journal off", "blocking REQ/REP echo, one core",
                 True),
                (pinned, "sync", 99, "one core, journal off", "blocking REQ/REP echo, one core",
                 False),
                ({**pinned, "ours": journaled["ours"]}, "sync", 50, "one core, journal on",
                 "blocking REQ/REP echo, one core", False),
                (free, "sync", 50, "free", "blocking REQ/REP echo, free", False),
            ]
            if path == "async":
                rows.append(
                    (pinned, "async", 50, "one core", "echo, asyncio both sides, one core", False)
                )
            else:
                rows.append((pinned, "reader", 50, "one core",
                             "echo, blocking REQ -> ROUTER on a loop's reader, one core", False))
            for data, kind, q, where, label, judged in rows:
                figure = percentile(data["ours"][path, op], q)
                base = percentile(data[kind][op], q)
                results.append(
                    Result(
                        bench="roundtrip",
                        name=f"{op} p{q}, {client_name}, ipc, {where}" + SUFFIX[kind],
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


def _better(old: list[float], new: list[float]) -> list[float]:
    """The run with the lower median (noise only ever slows a run down)."""
    if not old:
        return new
    return new if percentile(new, 50) < percentile(old, 50) else old
