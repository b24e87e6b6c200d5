"""Event pipeline: registry changes -> PUB -> a client mirror in another process, events/s."""

from __future__ import annotations

from typing import Any

from bench import Config, Result, growth_row, raw
from bench.wire import Peer, daemon_and_client

LIVE = 100
"""Live tasks the load's token updates go round."""

TARGET = 0.5
"""Issue target: at least half the raw PUB/SUB rate."""


def measure(daemon: Peer, client: Peer, count: int, repeats: int) -> dict[str, Any]:
    """Best of `repeats`: `count` changes made in the daemon, until the mirror holds the last.

    The clock starts at the daemon's first change and stops when the client's mirror
    reaches the last seq (both perf_counter: CLOCK_MONOTONIC, shared by processes).
    """
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        seq = daemon.call("seq")
        client.send("await_seq", seq + count)
        if client.recv() != "armed":
            raise RuntimeError("client not armed")
        start, last, sample = daemon.call("produce", count)
        end, resyncs, mirror_seq = client.recv()
        rate = (last - seq) / (end - start)
        if best is None or rate > best["events_s"]:
            best = {"events_s": rate, "resyncs": resyncs, "sample": sample, "seconds": end - start}
    assert best is not None
    return best


def run(config: Config) -> list[Result]:
    """ipc and tcp (CURVE) pipelines, each next to raw PUB/SUB of the same message size.

    Our runs and the raw runs alternate, so a machine busy with something else slows
    both alike; the best of each is kept.
    """
    results: list[Result] = []
    count = config.pipeline_events
    held = min(config.sizes)
    ours: dict[str, dict[str, Any]] = {}
    base: dict[str, dict[str, Any]] = {}

    def keep(store: dict[str, dict[str, Any]], key: str, got: dict[str, Any]) -> None:
        if key not in store or got["events_s"] > store[key]["events_s"]:
            store[key] = got

    for transport in ("ipc", "ipc-nojournal", "tcp"):
        wire = transport.removesuffix("-nojournal")
        with daemon_and_client(wire, journal=transport == wire) as (daemon, client):
            daemon.call("fill", held, LIVE)
            client.call("mirror")
            for _ in range(config.repeats):
                got = measure(daemon, client, count, 1)
                keep(ours, transport, got)
                sample = got["sample"]
                if transport == "ipc-nojournal":
                    continue
                if transport == "ipc":
                    keep(base, "ipc", raw.pubsub("ipc", curve=False, count=count, sample=sample))
                else:
                    keep(base, "tcp+curve", raw.pubsub("tcp", curve=True, count=count, sample=sample))
                    keep(base, "tcp", raw.pubsub("tcp", curve=False, count=count, sample=sample))
    params = {"events": count, "held": held, "event_bytes": len(ours["ipc"]["sample"])}
    for transport, key, label, judged in (
        ("ipc", "ipc", "raw PUB/SUB ipc", True),
        ("ipc-nojournal", "ipc", "raw PUB/SUB ipc", False),
        ("tcp", "tcp+curve", "raw PUB/SUB tcp+CURVE", True),
        ("tcp", "tcp", "raw PUB/SUB tcp, no CURVE", False),
    ):
        figure = ours[transport]["events_s"]
        ratio = figure / base[key]["events_s"]
        wire = {"ipc": "ipc", "ipc-nojournal": "ipc, journal off", "tcp": "tcp+CURVE"}[transport]
        results.append(
            Result(
                bench="pipeline",
                name=f"events/s registry->mirror, {wire}"
                + (" (vs no-CURVE raw)" if key == "tcp" else ""),
                unit="ev/s",
                figure=figure,
                baseline=base[key]["events_s"],
                baseline_name=label,
                target=f"ratio >= {TARGET}" if judged else None,
                met=ratio >= TARGET if judged else None,
                params={**params, "resyncs": ours[transport]["resyncs"]},
                note="journal on, as `taskdeck serve` runs" if judged else
                "CURVE's own cost shows as this row's gap to the one above" if key == "tcp" else
                "the same daemon without its journal",
            )
        )
    if not config.quick:
        results.extend(_growth(config))
    return results


def _growth(config: Config) -> list[Result]:
    """Pipeline rate with 1k, 10k, 100k tasks held (mirror dicts grow, events do not).

    The raw PUB/SUB rate is measured again beside each size: it holds no tasks, so its
    "growth" is what the machine's noise alone does over the same runs.
    """
    count = config.pipeline_events
    costs: list[float] = []
    base: list[float] = []
    for held in config.sizes:
        with daemon_and_client("ipc") as (daemon, client):
            daemon.call("fill", held, LIVE)
            client.call("mirror")
            got = measure(daemon, client, count, config.repeats)
            costs.append(1 / got["events_s"])
            raw_best = max(raw.pubsub("ipc", curve=False, count=count, sample=got["sample"])
                           ["events_s"] for _ in range(config.repeats))
            base.append(1 / raw_best)
    return [
        growth_row("pipeline", "seconds per event vs tasks held (ipc)", list(config.sizes), costs,
                   base, per_item=False)
    ]
