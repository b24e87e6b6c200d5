"""The daemon's connection guard: client connections counted and kept under a cap.

libzmq accepts every connection it can and aborts the whole process when an ipc accept
finds no free file descriptor; `Connections` watches the daemon's bound sockets from a
thread of its own and refuses connections past the cap before that can happen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from core.runtime import open_fd_count

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 4096
"""Client connections served at once, both sockets together (a dashboard holds two, a
command one); more are refused (closed at once) until some leave. Lower when the open
file limit leaves less room (see `connection_cap`)."""

FD_RESERVE = 1024
"""File descriptors kept free beyond the connection cap (half the limit when that is
less): the journal, command pipes, and connections libzmq accepts in a burst before the
daemon hears of them (measured: up to about a hundred)."""

BURST_LAG = 512
"""Connections libzmq may accept in a burst before the connection guard hears of them
(measured: about 40 in 0.15 ms); within this of the limit it counts descriptors itself."""

SWITCH_INTERVAL = 0.0001
"""Seconds a thread holds the GIL while another waits, while the connection guard runs."""


def fd_reserve(fd_limit: int) -> int:
    """Descriptors to keep free: half the limit, at most `FD_RESERVE`."""
    return max(8, min(FD_RESERVE, fd_limit // 2))


def connection_cap(fd_limit: int, in_use: int | None) -> int:
    """How many client connections fit under the open file limit, keeping `fd_reserve`
    free, at most `MAX_CONNECTIONS`, at least 1."""
    in_use = in_use if in_use is not None else 64
    room = fd_limit - in_use - fd_reserve(fd_limit)
    return max(1, min(MAX_CONNECTIONS, room))


class Connections:
    """Counts the daemon's client connections and keeps them under a cap, from a thread.

    libzmq accepts every connection it can, and aborts the whole process when an ipc
    accept finds no free file descriptor. Socket monitors report each accepted
    connection's descriptor; a thread of its own reads them (the event loop may be busy
    for milliseconds, while a burst of connections is accepted in microseconds) and:

    - past the cap, shuts the new connection down at once, which libzmq sees as the
      peer leaving (a REQ client reconnects and retries by itself);
    - when the process nears its open file limit (a burst faster than those
      refusals), closes the gate: on ipc the public socket path is a symlink to the bound socket, and it
      is removed, so new clients find no socket while those connected carry on. It
      comes back once the count is under the cap again, after a pause that doubles
      while bursts go on. (TCP needs no gate: libzmq survives a failed TCP accept.)

    Heavy churn leaves freed memory with the allocator; it is handed back to the system
    once many connections have gone.
    """

    TRIM_AFTER = 512
    """Connections closed before freed memory is handed back to the system."""

    def __init__(self, cap: int, *, fd_limit: int, reserve: int = FD_RESERVE) -> None:
        self.cap = cap
        self.shut_at = fd_limit - reserve
        """Open descriptors (all of them, counted by the system) at which the gate shuts."""
        self.refused = 0
        """Connections shut down because the cap was reached."""
        self.pauses = 0
        """Times the gate closed under a burst."""
        self.peak = 0
        self._watched: list[_Watched] = []
        self._gates: list[tuple[Path, str]] = []
        """(public symlink, its target) of each ipc endpoint."""
        self._closed_since_trim = 0
        self._gate_shut_until: float | None = None
        self._pause_for = 0.25
        self._stop = threading.Event()
        self._switch = sys.getswitchinterval()
        self._thread: threading.Thread | None = None

    @property
    def count(self) -> int:
        """Client connections open now, on both sockets."""
        return sum(len(watched.open) for watched in self._watched)

    def watch(self, sock: zmq.Socket[Any], gate: tuple[Path, str] | None = None) -> None:
        """Follow the connections of a bound socket (before `start`); `gate` is its ipc
        symlink and target."""
        address = f"inproc://taskdeck-monitor-{id(self)}-{len(self._watched)}"
        sock.monitor(address, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        monitor: zmq.Socket[Any] = zmq.Socket(sock.context, zmq.PAIR)
        monitor.connect(address)
        self._watched.append(_Watched(sock, monitor, sock.getsockopt_string(zmq.LAST_ENDPOINT)))
        if gate is not None:
            self._gates.append(gate)

    def start(self) -> None:
        # The thread must get the GIL within a fraction of a millisecond of an event,
        # not after the loop's 5 ms slice: a burst fills hundreds of descriptors in 5 ms.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, name="taskdeck-connections",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop following (before the sockets close)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
            sys.setswitchinterval(self._switch)
        for watched in self._watched:
            with contextlib.suppress(zmq.ZMQError):
                watched.sock.disable_monitor()
            watched.monitor.close(linger=0)
        self._watched.clear()

    def _run(self) -> None:
        from zmq.utils.monitor import parse_monitor_message

        poller = zmq.Poller()
        for watched in self._watched:
            poller.register(watched.monitor, zmq.POLLIN)
        by_socket = {watched.monitor: watched for watched in self._watched}
        while not self._stop.is_set():
            try:
                ready = poller.poll(100)
            except zmq.ZMQError:
                return
            for monitor, _ in ready:
                watched = by_socket[monitor]
                while True:
                    try:
                        event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
                    except (zmq.Again, zmq.ZMQError):
                        break
                    self._on_event(watched, event["event"], int(event["value"]))
            self._tend_gate()

    def _on_event(self, watched: _Watched, kind: int, fd: int) -> None:
        if kind == zmq.EVENT_ACCEPTED:
            watched.open.add(fd)
            count = self.count
            self.peak = max(self.peak, count)
            # The system's count, not ours: in a burst, libzmq accepts dozens of
            # connections before this thread hears of the first. (Far from the limit,
            # the cap keeps the count away from it; no need to list descriptors.)
            near = self.shut_at - count < BURST_LAG
            if near and (open_fd_count() or 0) >= self.shut_at:
                self._shut_gate(count)
            if count > self.cap:
                if self.refused % 1000 == 0:
                    log.warning("connection refused: %d open, the cap is %d (%d refused so far)",
                                count, self.cap, self.refused + 1)
                self.refused += 1
                _refuse(fd, watched.endpoint)
        elif kind == zmq.EVENT_DISCONNECTED and fd in watched.open:
            watched.open.discard(fd)
            self._closed_since_trim += 1

    def _shut_gate(self, count: int) -> None:
        if not self._gates or self._gate_shut_until is not None:
            return
        self.pauses += 1
        log.warning("%d connections, near the open file limit: new ones wait %gs", count,
                    self._pause_for)
        for link, _ in self._gates:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        self._gate_shut_until = time.monotonic() + self._pause_for
        self._pause_for = min(self._pause_for * 2, 5.0)

    def _tend_gate(self) -> None:
        """Reopen a shut gate once its pause is over and the count is under the cap; hand
        memory back after heavy churn."""
        if self._closed_since_trim >= self.TRIM_AFTER and self.count <= self.cap // 2:
            self._closed_since_trim = 0
            _malloc_trim()
        if self._gate_shut_until is None:
            if self.count <= self.cap // 2:
                self._pause_for = 0.25
            return
        if time.monotonic() < self._gate_shut_until or self.count > self.cap:
            return
        if (open_fd_count() or 0) >= self.shut_at:
            return
        for link, target in self._gates:
            with contextlib.suppress(FileExistsError):
                os.symlink(target, link)
        self._gate_shut_until = None


class _Watched:
    """One bound socket whose connections `Connections` follows."""

    def __init__(self, sock: zmq.Socket[Any], monitor: zmq.Socket[Any], endpoint: str) -> None:
        self.sock = sock
        self.monitor = monitor
        self.endpoint = endpoint
        self.open: set[int] = set()
        """Descriptors of its open connections."""


def _refuse(fd: int, endpoint: str) -> None:
    """Shut down a just-accepted connection, if `fd` is still a connection to `endpoint`."""
    try:
        conn = socket.socket(fileno=fd)
    except OSError:
        return  # closed meanwhile, or not a socket any more
    try:
        if _local_address(conn) == _endpoint_address(endpoint):
            conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        conn.detach()  # libzmq owns the descriptor and closes it


def _local_address(conn: socket.socket) -> object:
    name = conn.getsockname()
    if conn.family == socket.AF_UNIX:
        return name if isinstance(name, str) else os.fsdecode(name)
    return int(name[1])


def _endpoint_address(text: str) -> object:
    if text.startswith("ipc://"):
        return text[len("ipc://"):]
    return int(text.rpartition(":")[2] or 0)


def _malloc_trim() -> None:
    """Hand memory the allocator keeps after a burst of connections back to the system
    (glibc keeps freed blocks in its arenas: 8,000 connections left ~500 MB behind)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
