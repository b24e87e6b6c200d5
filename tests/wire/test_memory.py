"""Memory under hostile clients: unread replies and bursts of connections stay bounded.

A real daemon process; its resident memory is read from /proc before and after. The
figures are printed (run with -s to see them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from core import protocol as p
from core.client import SyncClient
from core.runtime import connection_path, read_connection
from tests.support import until_sync

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


def memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    runtime = tmp_path / "run"
    env = {**os.environ, "TASKDECK_STATE_DIR": str(tmp_path / "state")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--no-journal", "--runtime-dir", str(runtime)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        until_sync(lambda: connection_path(runtime).exists() or daemon.poll() is not None,
                   timeout=15, what="the daemon to start")
        assert daemon.poll() is None
        yield daemon, runtime
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)


@pytest.mark.timeout(180)
def test_unread_list_replies_do_not_pile_up(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    daemon, runtime = served
    with SyncClient(runtime, request_timeout=10) as client:
        for n in range(2000):
            client.request(p.Open(description=f"{n:05d} " + "x" * 500, lease=600))
        before = memory(daemon.pid)
        # One client sends 1,500 lists of every task (about 1.3 MB each) and reads nothing.
        ctx = zmq.Context()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.SNDTIMEO, 60_000)
        dealer.connect(read_connection(runtime).commands)
        try:
            for n in range(1500):
                request = p.Request(id=f"l{n}", version=p.PROTOCOL_VERSION,
                                    body=p.ListTasks(limit=10000))
                dealer.send_multipart([b"", p.encode(request)])
            # Requests of one client are handled in order: once this task exists, every
            # list before it has been answered.
            marker = p.Request(id="marker", version=p.PROTOCOL_VERSION,
                               body=p.Open(description="after the lists", lease=600))
            dealer.send_multipart([b"", p.encode(marker)])
            deadline = time.monotonic() + 120
            while not client.list_tasks(limit=1)[0].description == "after the lists":
                assert time.monotonic() < deadline, "the lists were never all answered"
                time.sleep(0.05)  # polling the daemon, with a deadline
            after = memory(daemon.pid)
        finally:
            dealer.close(linger=0)
            ctx.term()
    grew = after["VmHWM"] - before["VmRSS"]
    print(f"\nunread lists: RSS {before['VmRSS'] / MB:.0f} MB before, peak "
          f"{after['VmHWM'] / MB:.0f} MB (+{grew / MB:.0f} MB), {after['VmRSS'] / MB:.0f} MB after")
    assert grew < 200 * MB


@pytest.mark.timeout(180)
def test_a_burst_of_connections_hands_its_memory_back(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    daemon, runtime = served
    info = read_connection(runtime)
    before = memory(daemon.pid)
    hello = p.encode(p.Request(id="h", version=p.PROTOCOL_VERSION, body=p.Hello()))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 9_000)
    socks: list[zmq.Socket[Any]] = []
    try:
        for rounds in range(2):  # 2 x 4,000 connections, each sending one request
            for n in range(4000):
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(info.commands)
                sock.send_multipart([b"", hello])
                socks.append(sock)
            with SyncClient(runtime, request_timeout=5, retries=10) as client:
                assert client.hello()["pid"] == daemon.pid
            peak = memory(daemon.pid)
            for sock in socks:
                sock.close(linger=0)
            socks.clear()
    finally:
        for sock in socks:
            sock.close(linger=0)
        ctx.term()
    # The daemon hands freed memory back about a second after the connections went.
    deadline = time.monotonic() + 10
    took = max(peak["VmRSS"], memory(daemon.pid)["VmHWM"]) - before["VmRSS"]
    while memory(daemon.pid)["VmRSS"] - before["VmRSS"] > took * 0.6:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling the daemon's memory, with a deadline
    after = memory(daemon.pid)
    print(f"\nconnection burst: RSS {before['VmRSS'] / MB:.0f} MB before, "
          f"{peak['VmRSS'] / MB:.0f} MB with 4,000 open, peak {after['VmHWM'] / MB:.0f} MB, "
          f"{after['VmRSS'] / MB:.0f} MB after")
    # At least 40 % of what the burst took is handed back: the allocator keeps some arenas,
    # the command thread's among them (seen: 48-60 % handed back since requests are served
    # on that thread).
    assert after["VmRSS"] - before["VmRSS"] < took * 0.6
