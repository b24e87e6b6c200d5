"""`python -m bench.profile WHAT`: where the time goes, sampled with py-spy on both processes.

WHAT is `pipeline`, `roundtrip` (`answer` through the async `Client`), `roundtrip_sync`
(through the blocking `SyncClient`), `submit` and `submit_sync` (the same for `submit`)
or `late_join`; `--one-core --no-journal` profiles the round trip as its judged rows
measure it. The daemon and client processes are
started as the benchmark starts them, py-spy samples each while the load runs, and
the hottest functions (own time and total time) are printed per process. py-spy is
not a dependency of taskdeck: `pip install py-spy` first. For the dashboard, which
runs in this process, use pyinstrument: `pip install pyinstrument` and
`python -m bench.profile dashboard`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        [exe, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "1000", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Not on the core the load may be pinned to: py-spy's own work would slow what it samples.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(spy.pid, range(os.cpu_count() or 1))
    return spy


def summarise(raw: Path, top: int = 15) -> str:
    """The hottest functions of a py-spy raw (collapsed stacks) file, own and total time."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        for name in set(frames):
            total[name] += n
        own[frames[-1]] += n
    if not samples:
        return "  (no samples)"
    lines = ["  own time:"]
    lines += [f"    {100 * v / samples:5.1f}%  {k}" for k, v in own.most_common(top)]
    lines.append("  total time (function and what it calls):")
    skip = ("<module>", "spawn_main", "_main", "BaseProcess", "run (runners", "Runner.run",
            "BaseEventLoop.run", "_run_once", "Handle._run", "daemon_process", "client_process")
    shown = [(k, v) for k, v in total.most_common(top * 3) if not any(s in k for s in skip)]
    lines += [f"    {100 * v / samples:5.1f}%  {k}" for k, v in shown[:top]]
    return "\n".join(lines)


def profile_wire(what: str, size: int, one_core: bool = False, journal: bool = True) -> None:
    """Run one wire benchmark's load under py-spy and print both processes' profiles.

    With `one_core`, every process is pinned to one CPU, as the judged round-trip rows are.
    """
    from bench.roundtrip import _one_core, _submits
    from bench.wire import daemon_and_client

    pinned = _one_core() if one_core else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="taskdeck-prof-") as tmp, pinned, \
            daemon_and_client("ipc", journal=journal) as (daemon, client):
        outs = {"daemon": Path(tmp) / "daemon.txt", "client": Path(tmp) / "client.txt"}
        if what == "pipeline":
            daemon.call("fill", 1000, 100)
            client.call("mirror")
        elif what == "late_join":
            daemon.call("fill", size, 50)
        elif what.startswith("roundtrip"):
            daemon.call("fill", 1000, 10)
            prompt_ids = daemon.call("prompts", size)
        else:
            daemon.call("fill", 1000, 10)
        spies = [_spy(peer.process.pid, outs[name])
                 for name, peer in (("daemon", daemon), ("client", client))]
        time.sleep(1.0)  # py-spy attaches
        started = time.perf_counter()
        if what == "pipeline":
            seq = daemon.call("seq")
            client.send("await_seq", seq + size)
            client.recv()
            daemon.call("produce", size)
            client.recv()
        elif what == "late_join":
            client.call("late_join", 5, None)
        elif what.startswith("roundtrip"):
            client.call("answer", prompt_ids, "sync" if what == "roundtrip_sync" else "async")
        else:
            _submits(daemon, client, size, "sync" if what == "submit_sync" else "async")
        elapsed = time.perf_counter() - started
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(30)
        print(f"{what}: {elapsed:.2f}s under py-spy")
        for name, out in outs.items():
            print(f"{name} process:")
            print(summarise(out) if out.exists() else "  (py-spy wrote nothing: is it installed?)")


def profile_dashboard(keys: int) -> None:
    """Keys under a 1,000 ev/s stream with pyinstrument running in this process."""
    from pyinstrument import Profiler

    from bench.dashboard import _dashboard
    from bench.wire import daemon_only

    with daemon_only("ipc") as (daemon, runtime):
        daemon.call("fill", 10_000, 1000, True)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        asyncio.run(_dashboard(runtime, daemon, keys, 1000.0, 20))
        profiler.stop()
    print(profiler.output_text(unicode=True, color=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["pipeline", "roundtrip", "roundtrip_sync", "submit", "submit_sync",
                                 "late_join", "dashboard"])
    parser.add_argument("--size", type=int, default=0,
                        help="events, requests or tasks (default: 200k, 20k, 100k, 300 keys)")
    parser.add_argument("--one-core", action="store_true",
                        help="pin every process to one CPU (as the judged round-trip rows are)")
    parser.add_argument("--no-journal", action="store_true", help="the daemon without its journal")
    args = parser.parse_args(argv)
    if args.what == "dashboard":
        profile_dashboard(args.size or 300)
    else:
        default = {"pipeline": 200_000, "late_join": 100_000}.get(args.what, 20_000)
        profile_wire(args.what, args.size or default, args.one_core, not args.no_journal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
