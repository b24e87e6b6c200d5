"""Late join: a new client mirrors a daemon holding N tasks; time to a consistent mirror."""

from __future__ import annotations

from bench import Config, Result, growth_row
from bench.wire import daemon_and_client

LIVE = 50
"""Tasks still running in the held registry (the rest ended)."""

TARGET = 2.5
"""Issue target: a join of 100,000 tasks at most 2.5x the decode of its bytes."""

JUDGED = 100_000
"""The size the target is judged at (smaller joins are dominated by fixed costs)."""


def run(config: Config) -> list[Result]:
    """For each size: `start_mirror` -> synced in a fresh client process, vs decoding the snapshot.

    The daemon holds trees of ten external tasks, all but a few finished with tokens
    and a result. The baseline decodes the very bytes of that snapshot's reply with
    msgspec in the client process: what the join cannot do without. Clients negotiate
    protocol 2 (tasks as rows); at the largest size a client pinned to protocol 1
    (tasks as maps, as older clients get them) is measured too, for comparison.
    """
    results: list[Result] = []
    sizes = list(config.late_join_sizes)
    sync_costs: list[float] = []
    decode_costs: list[float] = []
    for size in sizes:
        with daemon_and_client("ipc") as (daemon, client):
            daemon.call("fill", size, LIVE)
            versions = (None, 1) if size == sizes[-1] else (None,)
            for version in versions:
                joined = client.call("late_join", config.repeats, version, timeout=600)
                decode_s, nbytes, tasks = client.call("decode_snapshot",
                                                      max(3, config.repeats), version)
                if tasks != size or joined["tasks"] != size:
                    raise RuntimeError(f"mirror holds {joined['tasks']} tasks, daemon {size}")
                judged = size == JUDGED and version is None
                if version is None:
                    sync_costs.append(joined["sync_s"])
                    decode_costs.append(decode_s)
                form = "" if version is None else f", protocol {version} client (maps)"
                results.append(
                    Result(
                        bench="late_join",
                        name=f"time to consistent mirror, {size:,} tasks{form}",
                        unit="s",
                        figure=joined["sync_s"],
                        baseline=decode_s,
                        baseline_name="msgspec decode of the snapshot bytes",
                        better="lower",
                        target=f"ratio <= {TARGET:g}" if judged else None,
                        met=joined["sync_s"] / decode_s <= TARGET if judged else None,
                        params={
                            "tasks": size,
                            "protocol": version or "negotiated",
                            "snapshot_bytes": nbytes,
                            "snapshot_request_s": joined["snapshot_request_s"],
                        },
                        note=f"{nbytes / 1e6:.1f} MB; snapshot request alone "
                             f"{joined['snapshot_request_s'] * 1e3:.1f} ms",
                    )
                )
    # From 10k: at 1k the fixed costs of a join (subscribe, first heartbeat) hide the rise.
    span = slice(-2, None) if len(sizes) > 2 else slice(None)
    results.append(growth_row("late_join", "join time per task", sizes[span], sync_costs[span],
                              decode_costs[span]))
    return results
