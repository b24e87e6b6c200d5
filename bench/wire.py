"""A real daemon and a real client, each in its own process, driven over pipes by the bench.

The daemon process serves a `Registry` with `core.server.Daemon` and makes state
changes on request; the client process runs `core.client.Client` and times what its
user would see. Both write only under the temporary directory they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import spawn_context
from bench.raw import _recv

LEASE = 3600.0
"""Lease of the live external tasks the load works on: long enough never to lapse."""


SUBMITTED = "shell"
"""The agent the round trip submits to: what a user submits (`taskdeck submit shell
'make test'`). Its run starts on submit and asks before it runs anything, so each
task ends up blocked on its question, holding no slot: every submit starts a run."""


# ------------------------------------------------------------------ daemon


class _DaemonSide:
    """The registry and the operations the bench may ask of it."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.live: list[int] = []
        self._stream: asyncio.Task[None] | None = None
        self._streamed = 0

    def fill(self, count: int, live: int, live_first: bool = False) -> int:
        """Add `count` external tasks in trees of ten; all but `live` end finished.

        The live ones are the newest, or with `live_first` the oldest (the top of a
        tree view). Returns the registry's seq afterwards.
        """
        reg = self.registry
        made: list[int] = []
        root = None
        for i in range(count):
            parent = None if i % 10 == 0 else root
            task = reg.open_external(
                f"summarise chapter {i} of the report", parent_id=parent, lease=LEASE
            )
            if parent is None:
                root = task.id
            made.append(task.id)
        if not live:
            keep: set[int] = set()
        else:
            keep = set(made[:live]) if live_first else set(made[-live:])
        # Children end before their parents, as work does.
        for task_id in reversed(made):
            if task_id in keep:
                continue
            reg.add_tokens(task_id, 1200 + task_id % 997, 300 + task_id % 101)
            reg.finish(task_id, f"done: {task_id % 7 + 1} files changed")
        self.live.extend(t for t in made if t in keep)
        return reg.seq

    async def produce(self, count: int) -> tuple[float, int, bytes]:
        """Make `count` state changes (token updates on the live tasks), as fast as we can.

        Yields to the event loop every 256 changes, as a daemon with agents running does.

        Returns:
            The perf_counter time of the first change, the seq after the last, and one
            encoded event of the load (for the baseline's message size).
        """
        from core import protocol as p
        from core.model import Event, TaskChanged

        reg = self.registry
        live = self.live
        n = len(live)
        start = time.perf_counter()
        for i in range(count):
            reg.add_tokens(live[i % n], 17, 5)
            if i & 255 == 255:
                await asyncio.sleep(0)
        sample = p.encode(
            Event(epoch=reg.epoch, seq=reg.seq, ts=time.time(), body=TaskChanged(task=reg.get(live[0])))
        )
        return start, reg.seq, sample

    def stream_start(self, rate: float) -> None:
        """Make `rate` token updates per second on the live tasks, in the background."""

        async def stream() -> None:
            reg, live = self.registry, self.live
            loop = asyncio.get_running_loop()
            start = loop.time()
            i = 0
            while True:
                await asyncio.sleep(0.005)
                due = int((loop.time() - start) * rate)
                while i < due:
                    reg.add_tokens(live[i % len(live)], 11, 3)
                    i += 1
                self._streamed = i

        self._streamed = 0
        self._stream = asyncio.get_running_loop().create_task(stream())

    async def stream_stop(self) -> int:
        """Stop the stream; the number of updates it made."""
        if self._stream is not None:
            self._stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream
            self._stream = None
        return self._streamed

    def probe(self, task_id: int) -> tuple[float, int]:
        """One token update on a task: the perf_counter time of the change and its new count."""
        task = self.registry.add_tokens(task_id, 1, 0)
        return time.perf_counter(), task.prompt_tokens

    async def end_submitted(self) -> int:
        """Abort the tasks the round trip submitted (each blocked on its question) and wait
        until their runs have returned; returns how many.

        A user's daemon holds a few such runs, not thousands: left alive, each keeps its
        coroutines, and the cycle collector's passes over them grow with every round.
        """
        reg = self.registry
        waiting = reg.list(agent=SUBMITTED, status="blocked", limit=None)
        for task in waiting:
            reg.abort(task.id)
        for task in waiting:
            await reg.join(task.id)
        # Let the loop publish the aborts' events now, not into the next timed request.
        await asyncio.sleep(0.01)
        return len(waiting)

    def prompts(self, count: int) -> list[int]:
        """Open `count` external tasks, each blocked on a pending question; their prompt ids."""
        reg = self.registry
        ids = []
        for i in range(count):
            task = reg.open_external(f"deploy build {i} to staging", lease=LEASE)
            ids.append(reg.open_prompt(task.id, f"Run `make deploy-{i}`?").id)
        return ids


async def _daemon_main(
    conn: Connection, runtime_dir: str, bind: str | None, state_dir: str, journal: bool
) -> None:
    from core.agents import builtin_agents
    from core.assembly import Assembly
    from core.registry import Registry

    def make_registry(first_id: int) -> Registry:
        # As `taskdeck serve` makes it: its defaults (4 running at once, a 300 s task
        # timeout) and its built-in agents, so a `submit` starts what a user's does.
        return Registry(agents=builtin_agents(), first_id=first_id)

    # As `taskdeck serve` builds it (core/assembly.py): the journal on unless asked off.
    # No retention: the benchmarks hold the task counts they name.
    deck = Assembly(
        make_registry, runtime_dir=Path(runtime_dir),
        journal=Path(state_dir) / "journal.sqlite3" if journal else None,
        bind=bind, state_dir=Path(state_dir),
    )
    loop = asyncio.get_running_loop()
    async with deck:
        daemon = deck.daemon
        assert daemon is not None
        registry = deck.registry
        side = _DaemonSide(registry)
        conn.send(("ready", daemon.connection.events))
        while True:
            op, args = await loop.run_in_executor(None, conn.recv)
            if op == "stop":
                break
            if op == "seq":
                conn.send(registry.seq)
            elif op == "fill":
                seq = side.fill(*args)
                if deck.journal is not None:
                    deck.journal.write()  # the fill's rows now, not in the middle of a timing
                conn.send(seq)
            elif op == "produce":
                conn.send(await side.produce(*args))
            elif op == "prompts":
                conn.send(side.prompts(*args))
            elif op == "end_submitted":
                conn.send(await side.end_submitted())
            elif op == "stream_start":
                conn.send(side.stream_start(*args))
            elif op == "stream_stop":
                conn.send(await side.stream_stop())
            elif op == "probe":
                conn.send(side.probe(*args))
            elif op == "len":
                conn.send(len(registry))
            elif op == "live":
                conn.send(list(side.live))
    conn.send("stopped")


def daemon_process(
    conn: Connection, runtime_dir: str, bind: str | None, state_dir: str, journal: bool = True
) -> None:
    """Entry point of the daemon process (with its journal, as `taskdeck serve` runs)."""
    asyncio.run(_daemon_main(conn, runtime_dir, bind, state_dir, journal))


# ------------------------------------------------------------------ client


async def _client_main(conn: Connection, runtime_dir: str, state_dir: str) -> None:
    from core import protocol as p
    from core.client import Client, SyncClient

    loop = asyncio.get_running_loop()
    client = Client(Path(runtime_dir), state_dir=Path(state_dir), client_name="bench")
    await client.connect()
    sync = SyncClient(Path(runtime_dir), state_dir=Path(state_dir), client_name="bench")
    target = 0
    reached: asyncio.Future[float] | None = None

    def on_change(changes: Any) -> None:
        nonlocal reached
        if reached is not None and not reached.done() and client.mirror.seq >= target:
            reached.set_result(time.perf_counter())

    try:
        while True:
            op, args = await loop.run_in_executor(None, conn.recv)
            if op == "stop":
                break
            if op == "mirror":
                start = time.perf_counter()
                await client.start_mirror(on_change)
                await client.wait_synced(timeout=120)
                conn.send(time.perf_counter() - start)
            elif op == "await_seq":
                (target,) = args
                reached = loop.create_future()
                resyncs = client.resync_count
                if client.mirror.seq >= target:
                    reached.set_result(time.perf_counter())
                conn.send("armed")
                end = await asyncio.wait_for(reached, 300)
                conn.send((end, client.resync_count - resyncs, client.mirror.seq))
            elif op in ("answer", "submit"):
                items, path, *agent = args
                if path != "mirrored":
                    used = sync if path == "sync" else client
                    conn.send(await _roundtrips(used, op, items, path == "sync", *agent))
                    continue
                # A `Client` holding a live mirror, as the dashboard and `submit --wait`
                # run theirs: each request's events reach its loop while it waits for the
                # reply. Only for these requests: its events would load the other paths'.
                async with Client(Path(runtime_dir), state_dir=Path(state_dir),
                                  client_name="tui") as following:
                    await following.start_mirror()
                    await following.wait_synced(timeout=120)
                    conn.send(await _roundtrips(following, op, items, False, *agent))
            elif op == "late_join":
                repeats, version = args
                conn.send(await _late_join(Path(runtime_dir), Path(state_dir), repeats,
                                           version))
            elif op == "decode_snapshot":
                # The baseline for late join: decode the very bytes of the snapshot reply,
                # in the form the protocol `version` sends it.
                repeats, version = args
                data = _snapshot_reply(sync, version)
                best = min(_time(lambda: p.REPLY_DECODER.decode(data)) for _ in range(repeats))
                snap = p.REPLY_DECODER.decode(data).result.state()
                conn.send((best, len(data), len(snap.tasks)))
    finally:
        sync.close()
        await client.close()
    conn.send("stopped")


async def _roundtrips(
    client: Any, op: str, items: Any, blocking: bool, agent: str = SUBMITTED
) -> tuple[list[float], int, int]:
    """Sequential `answer`s (one per prompt id in `items`) or `submit`s (`items` of them,
    to `agent`), through `client`: a `SyncClient` when `blocking`, else a `Client`.

    Returns:
        The latency of each, and the byte sizes of the last request and reply.
    """
    from core import protocol as p

    perf = time.perf_counter
    latencies: list[float] = []
    if op == "answer":
        bodies = [p.Answer(prompt_id=i, text="approve") for i in items]
    else:
        bodies = [p.Submit(agent=agent, description=f"pytest -q tests/test_chapter_{i}.py")
                  for i in range(items)]
    result: Any = None
    for body in bodies:
        t0 = perf()
        if op == "answer":
            if blocking:
                result = client.answer(body.prompt_id, body.text)
            else:
                result = await client.answer(body.prompt_id, body.text)
        elif blocking:
            result = client.submit(body.agent, body.description)
        else:
            result = await client.submit(body.agent, body.description)
        latencies.append(perf() - t0)
    wrapped = p.PromptResult(prompt=result) if op == "answer" else p.TaskResult(task=result)
    request = p.encode(p.Request(id=uuid.uuid4().hex, version=p.PROTOCOL_VERSION,
                                 origin=client.origin, body=bodies[-1]))
    reply = p.encode(p.Reply(id=uuid.uuid4().hex, ok=True, result=wrapped))
    return latencies, len(request), len(reply)


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _snapshot_reply(sync: Any, version: int | None) -> bytes:
    """The bytes of a snapshot reply as the daemon sends them to a client of `version`
    (None: the one the client settles on)."""
    from core import protocol as p

    sock = sync._new_req(sync._ctx)
    try:
        sock.send(p.encode(p.Request(id=uuid.uuid4().hex, version=version or sync.version,
                                     body=p.GetSnapshot())))
        return sock.recv()
    finally:
        sock.close(linger=0)


async def _late_join(runtime_dir: Path, state_dir: Path, repeats: int,
                     version: int | None) -> dict[str, float]:
    """A new client's time from `start_mirror` to a synced mirror, best of `repeats`.

    Also times the snapshot request alone, to split the cost. `version` pins the
    protocol the client speaks (None: it negotiates, as clients do).
    """
    from core.client import Client

    best_sync = best_snap = float("inf")
    tasks = 0
    for _ in range(repeats):
        client = Client(runtime_dir, state_dir=state_dir, client_name="bench-join",
                        protocol_version=version)
        try:
            start = time.perf_counter()
            await client.start_mirror()
            await client.wait_synced(timeout=120)
            best_sync = min(best_sync, time.perf_counter() - start)
            tasks = len(client.mirror.tasks)
            t0 = time.perf_counter()
            await client.snapshot()
            best_snap = min(best_snap, time.perf_counter() - t0)
        finally:
            await client.close()
    return {"sync_s": best_sync, "snapshot_request_s": best_snap, "tasks": tasks}


def client_process(conn: Connection, runtime_dir: str, state_dir: str) -> None:
    """Entry point of the client process."""
    asyncio.run(_client_main(conn, runtime_dir, state_dir))


# ------------------------------------------------------------------ driver


class Peer:
    """One child process and the pipe to talk to it."""

    def __init__(self, target: Any, *args: Any) -> None:
        ctx = spawn_context()
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    def call(self, op: str, *args: Any, timeout: float = 300.0) -> Any:
        """Send an operation and wait for its answer."""
        self.conn.send((op, args))
        return _recv(self.conn, timeout)

    def send(self, op: str, *args: Any) -> None:
        self.conn.send((op, args))

    def recv(self, timeout: float = 300.0) -> Any:
        return _recv(self.conn, timeout)

    def stop(self) -> None:
        """Ask the process to stop; kill it if it does not."""
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            if self.process.is_alive():
                self.call("stop", timeout=10)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


@contextlib.contextmanager
def daemon_only(transport: str = "ipc", *, journal: bool = True) -> Iterator[tuple[Peer, Path]]:
    """A daemon process, and the runtime dir where its connection file is.

    With `journal` (the default, as `taskdeck serve` runs) its journal is a file in the
    temporary state dir: every acknowledged change is written before its "ok".
    """
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        runtime = Path(tmp) / "run"
        state = Path(tmp) / "state"
        state.mkdir(mode=0o700)
        bind = "tcp://127.0.0.1:0" if transport == "tcp" else None
        daemon = Peer(daemon_process, str(runtime), bind, str(state), journal)
        try:
            ready = daemon.recv(60)
            if ready[0] != "ready":
                raise RuntimeError(f"daemon did not start: {ready!r}")
            yield daemon, runtime
        finally:
            daemon.stop()


@contextlib.contextmanager
def daemon_and_client(
    transport: str = "ipc", *, journal: bool = True
) -> Iterator[tuple[Peer, Peer]]:
    """A daemon process and a client process talking over `transport` ("ipc" or "tcp").

    TCP is served as taskdeck serves it off-host: with CURVE; the journal as `daemon_only`.
    """
    with daemon_only(transport, journal=journal) as (daemon, runtime):
        client = Peer(client_process, str(runtime), str(runtime.parent / "state"))
        try:
            yield daemon, client
        finally:
            client.stop()
