"""`taskdeck demo`: a throw-away daemon with the demo workload, for the dashboard or headless."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from core.errors import BadRequest, NotPending, TaskdeckError, Unavailable
from core.model import TaskStatus
from core.runtime import read_connection


class DemoDaemon:
    """`taskdeck serve --workload demo` in a fresh runtime dir, as a child process.

    The child journals into the runtime dir, so a user who kills it can start it
    again with `serve_command` and see the history; it stops by itself when this
    process dies (`--parent-pid`). Leaving the `with` block stops it (and a
    restarted one) and removes the dir.
    """

    def __init__(self, *, seed: int = 0, speed: float = 1.0, start_timeout: float = 15.0) -> None:
        if speed <= 0:
            raise BadRequest("--speed must be positive")
        self.seed = seed
        self.speed = speed
        self.start_timeout = start_timeout
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="taskdeck-demo-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def serve_command(self) -> list[str]:
        """The daemon's command line, as a person would type it to restart it."""
        return [
            "taskdeck", "serve",
            "--runtime-dir", str(self.runtime_dir),
            "--journal", str(self.runtime_dir / "journal.sqlite3"),
            "--workload", "demo",
            "--seed", str(self.seed),
            "--speed", f"{self.speed:g}",
        ]  # fmt: skip

    def hint(self) -> str:
        """How to reach the demo from another terminal, and how to restart its daemon."""
        return connect_hint(self.runtime_dir) + (
            f"\n  restart its daemon after a crash: {' '.join(self.serve_command)}"
        )

    def __enter__(self) -> DemoDaemon:
        command = [
            sys.executable, "-m", "core.cli", *self.serve_command[1:],
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        try:
            with open(self.runtime_dir / "daemon.log", "wb") as log:
                self._process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                read_connection(self.runtime_dir)
                return
            except Unavailable:
                pass
            if self._process.poll() is not None:
                log = (self.runtime_dir / "daemon.log").read_text(errors="replace").splitlines()
                raise Unavailable(f"the demo daemon exited: {log[-1] if log else 'no output'}")
            if time.monotonic() > deadline:
                raise Unavailable(f"the demo daemon did not start within {self.start_timeout:g}s")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop_restarted()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _stop_restarted(self) -> None:
        """Stop a daemon the user restarted on our runtime dir: the dir is going away."""
        try:
            pid = read_connection(self.runtime_dir).pid
        except TaskdeckError:
            return
        if pid and (self._process is None or pid != self._process.pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def connect_hint(runtime_dir: Path) -> str:
    """How a second dashboard or a script joins the demo's daemon."""
    return (
        f"taskdeck demo: daemon runtime dir {runtime_dir}\n"
        f"  second dashboard:  taskdeck tui --runtime-dir {runtime_dir}\n"
        f"  ask from a script: TASKDECK_RUNTIME_DIR={runtime_dir} taskdeck ask 'Deploy?'"
    )


async def stop_when_orphaned(parent_pid: int) -> None:
    """Stop this daemon once the process that started it is gone (e.g. its terminal closed)."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # the same clean shutdown as Ctrl-C


class DemoSummary(msgspec.Struct, kw_only=True):
    """What a headless demo run did."""

    seconds: float
    tasks: int
    by_status: dict[str, int]
    answered: int
    refused: int
    """Answers the daemon refused because the prompt had closed first (e.g. timed out)."""
    tokens: int
    events: int

    def __str__(self) -> str:
        statuses = ", ".join(f"{n} {s}" for s, n in self.by_status.items())
        return (
            f"demo: {self.tasks} tasks in {self.seconds:g}s, {statuses}; "
            f"{self.answered} prompts answered ({self.refused} closed before the answer); "
            f"{self.tokens:,} tokens; {self.events} events"
        )


async def run_headless(*, seconds: float, seed: int = 0, speed: float = 1.0) -> DemoSummary:
    """Run the demo workload on an in-process daemon, answering every prompt automatically.

    The answers go over the wire like a person's, through the client library.
    """
    from core.agents import builtin_agents
    from core.agents.demo import auto_answer
    from core.assembly import Assembly
    from core.client import Client
    from core.registry import Registry
    from core.workload import run_demo_workload

    if seconds <= 0 or speed <= 0:
        raise BadRequest("--seconds and --speed must be positive")
    runtime_dir = Path(tempfile.mkdtemp(prefix="taskdeck-demo-"))
    deck = Assembly(
        lambda first_id: Registry(agents=builtin_agents(seed=seed, speed=speed),
                                  first_id=first_id),
        runtime_dir=runtime_dir,
    )
    registry = deck.open().registry
    rng = random.Random(seed)
    answered = refused = 0
    loop = asyncio.get_running_loop()
    try:
        async with deck, Client(runtime_dir, client_name="demo-autoanswer") as client:
            print(connect_hint(runtime_dir), file=sys.stderr)
            workload = loop.create_task(run_demo_workload(registry, seed=seed, speed=speed))
            wake = asyncio.Event()
            await client.start_mirror(lambda changes: wake.set())
            await client.wait_synced()
            deadline = loop.time() + seconds
            while (remaining := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=remaining)
                except TimeoutError:
                    break
                wake.clear()
                for prompt in client.mirror.pending_oldest_first():
                    text, reason = auto_answer(prompt, rng)
                    try:
                        await client.answer(prompt.id, text, reason=reason)
                        answered += 1
                    except NotPending:
                        refused += 1
            workload.cancel()
            await asyncio.gather(workload, return_exceptions=True)
            snapshot = registry.snapshot()
    finally:
        await deck.close()
        shutil.rmtree(runtime_dir, ignore_errors=True)
    by_status = {s.value: 0 for s in TaskStatus}
    for task in snapshot.tasks:
        by_status[task.status.value] += 1
    return DemoSummary(
        seconds=seconds,
        tasks=len(snapshot.tasks),
        by_status=by_status,
        answered=answered,
        refused=refused,
        tokens=sum(t.tokens for t in snapshot.tasks),
        events=snapshot.seq,
    )
