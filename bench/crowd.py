"""Many clients at once: N blocking requesters spread over a few processes, all timed together.

The same harness drives taskdeck's daemon (each requester a `SyncClient`) and a raw
ROUTER echo (each requester a plain REQ socket), so the two throughputs compare the
servers, not the clients. A requester is a thread; threads are spread over
`PROCESSES` processes so that the GIL of one client process does not cap the rate.
"""

from __future__ import annotations

import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import zmq

from bench import spawn_context
from bench.raw import _recv

PROCESSES = 4
"""Client processes the requesters are spread over."""


def _taskdeck_worker(runtime_dir: str, state_dir: str, op: str, items: list[Any]) -> Any:
    """One requester's work through a `SyncClient`; returns a callable per request."""
    from core.client import SyncClient

    client = SyncClient(Path(runtime_dir), state_dir=Path(state_dir), client_name="bench-crowd")
    if op == "answer":
        calls = [lambda i=i: client.answer(i, "approve") for i in items]
    elif op == "answer_paired":  # each answer then a bare durable commit, timed apart
        from bench.durable import bare_committer

        commit = bare_committer(Path(state_dir))
        calls = [lambda: client.answer(items[0], "approve")]  # the warm-up, untimed
        for i in items[1:]:
            calls += [lambda i=i: client.answer(i, "approve"), commit]
    elif op == "progress":
        calls = [lambda i=i: client.request(_progress(i)) for i in items]
    else:
        raise ValueError(op)
    return client, calls


def _progress(task_id: int) -> Any:
    from core import protocol as p

    return p.Progress(task_id=task_id, text="reading the diff")


def _raw_worker(endpoint: str, request: bytes, count: int) -> Any:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)

    def call() -> bytes:
        sock.send(request)
        return sock.recv()

    class Closer:
        def close(self) -> None:
            sock.close(linger=0)

    return Closer(), [call] * count


def _crowd_process(conn: Connection, kind: str, setup: list[tuple[Any, ...]]) -> None:
    """Run one thread per entry of `setup`, all released at once; send back latencies.

    Every thread makes its client first, then waits at a barrier, so the clock covers
    only requests.
    """
    workers = [
        _taskdeck_worker(*args) if kind == "taskdeck" else _raw_worker(*args) for args in setup
    ]
    for _client, calls in workers:  # warm each connection before the clock starts
        if calls:
            calls[0]()
    barrier = threading.Barrier(len(workers) + 1)
    latencies: list[list[float]] = [[] for _ in workers]

    def run(index: int) -> None:
        calls = workers[index][1][1:]
        out = latencies[index]
        perf = time.perf_counter
        barrier.wait()
        for call in calls:
            t0 = perf()
            call()
            out.append(perf() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    conn.send("ready")
    conn.recv()
    start = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    end = time.perf_counter()
    for client, _calls in workers:
        client.close()
    conn.send((start, end, [x for run_ in latencies for x in run_]))


def crowd(kind: str, per_requester: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Run the requesters (one setup tuple each) spread over processes; rate and latencies.

    Returns:
        `rate` (requests/s from the first start to the last finish), `latencies` (s),
        `requests`.
    """
    ctx = spawn_context()
    procs = min(PROCESSES, len(per_requester))
    shares = [per_requester[i::procs] for i in range(procs)]
    peers = []
    try:
        for share in shares:
            here, child = ctx.Pipe()
            proc = ctx.Process(target=_crowd_process, args=(child, kind, share), daemon=True)
            proc.start()
            peers.append((here, proc))
        for here, _proc in peers:
            if _recv(here, 120) != "ready":
                raise RuntimeError("crowd process did not start")
        for here, _proc in peers:
            here.send("go")
        got = [_recv(here, 600) for here, _proc in peers]
    finally:
        for _here, proc in peers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    start = min(g[0] for g in got)
    end = max(g[1] for g in got)
    latencies = [x for g in got for x in g[2]]
    return {"rate": len(latencies) / (end - start), "latencies": latencies,
            "requests": len(latencies)}


def taskdeck_crowd(runtime: Path, op: str, chunks: list[list[Any]]) -> dict[str, Any]:
    """One `SyncClient` requester per chunk of items (prompt ids, task ids) against a daemon."""
    state = runtime.parent / "state"
    return crowd("taskdeck", [(str(runtime), str(state), op, chunk) for chunk in chunks])


def _echo_router(conn: Connection, endpoint: str, reply: bytes) -> None:
    """A plain blocking ROUTER answering every request with `reply` until told to stop."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(endpoint)
    conn.send("bound")
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not conn.poll(0):
        if not poller.poll(100):
            continue
        while True:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            router.send_multipart([*frames[:-1], reply])
    router.close()
    ctx.term()


def echo_crowd(requesters: int, count: int, request: bytes, reply: bytes) -> dict[str, Any]:
    """The same crowd against a raw ROUTER echo in its own process (ipc)."""
    ctx = spawn_context()
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        endpoint = f"ipc://{Path(tmp) / 'echo.sock'}"
        here, child = ctx.Pipe()
        server = ctx.Process(target=_echo_router, args=(child, endpoint, reply), daemon=True)
        server.start()
        try:
            _recv(here, 30)
            return crowd("raw", [(endpoint, request, count + 1)] * requesters)
        finally:
            here.send("stop")
            server.join(10)
            if server.is_alive():
                server.kill()
