"""Where the daemon is and how to reach it: the options both clients take, the
connection file, and the pieces of a Lazy Pirate exchange that do not depend on how
the bytes move."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import time
from pathlib import Path
from typing import Any

import zmq

from core import protocol as p
from core.errors import BadRequest, TaskdeckError, Unavailable
from core.runtime import (
    ConnectionInfo,
    KeyPair,
    daemon_gone,
    default_runtime_dir,
    existing_client_keys,
    nothing_listens,
)
from core.runtime import read_connection as _read_connection


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """How a client reaches its daemon: the one list of the options `Client` and
    `SyncClient` take (each also as a keyword argument of theirs)."""

    runtime_dir: Path | None = None
    """Where the daemon's connection file is (default: ours); re-read on reconnect, so a
    restarted daemon is found again."""
    connection: ConnectionInfo | None = None
    """Use these endpoints instead of reading the connection file."""
    client_name: str = "cli"
    """Recorded as the origin's client ("cli", "tui", "ask"...)."""
    request_timeout: float = 2.5
    """Seconds to wait for each reply before retrying."""
    retries: int = 3
    """Attempts per request (the Lazy Pirate "REQUEST_RETRIES"); after the last one the
    request fails with `Unavailable`."""
    heartbeat: float | None = None
    """The daemon's heartbeat interval; None takes it from the connection file."""
    client_keys: KeyPair | None = None
    """CURVE key pair for TCP daemons; None uses the one in the state dir, or a fresh
    throw-away pair."""
    state_dir: Path | None = None
    """Where to look for the client key pair."""
    rcvhwm: int = 100_000
    """Events buffered before the mirror starts losing them (and resyncs)."""
    protocol_version: int | None = None
    """The version requests declare; None: the highest this client shares with the daemon
    (its connection file's `versions`). Tests set one to check refusal or an old client."""


def _origin(client_name: str) -> p.Origin:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.geteuid())
    return p.Origin(
        user=user[: p.MAX_NAME],
        host=os.uname().nodename[: p.MAX_NAME],
        pid=os.getpid(),
        client=client_name[: p.MAX_NAME],
    )



class _Endpoint:
    """Where the daemon is and how to reach its command socket: what both clients share.

    Requests follow the Lazy Pirate pattern: wait `request_timeout` for the reply,
    else close the socket (LINGER 0), re-read the connection file, open a new one and
    send the same request again, with the same request id (so the daemon applies it
    once), at most `retries` times.

    Takes the options as a `ClientOptions`, or any of its fields as keyword arguments
    (which override `options`).
    """

    def __init__(
        self,
        runtime_dir: Path | str | None = None,
        *,
        options: ClientOptions | None = None,
        **overrides: Any,
    ) -> None:
        if runtime_dir is not None:
            overrides["runtime_dir"] = runtime_dir
        given = dataclasses.replace(options or ClientOptions(), **overrides)
        if given.runtime_dir is not None:
            given = dataclasses.replace(given, runtime_dir=Path(given.runtime_dir))
        elif given.connection is None:
            given = dataclasses.replace(given, runtime_dir=default_runtime_dir())
        self.options = given
        """The options this client was made with, the default runtime dir filled in."""
        self.runtime_dir = given.runtime_dir
        self._fixed = given.connection
        self.connection = given.connection
        self.version = given.protocol_version or p.PROTOCOL_VERSION
        """The protocol version requests declare, settled from the connection file."""
        self.request_timeout = given.request_timeout
        self.retries = max(1, given.retries)
        self._client_keys = given.client_keys
        self.origin = _origin(given.client_name)
        self.retry_count = 0
        """Requests re-sent after a timeout, since this client was made."""
        self._req_endpoint: str | None = None
        self._dead_since: tuple[int, float] | None = None
        """The exited pid the connection file names, and when it was first seen gone."""

    def _close_req(self) -> None:
        raise NotImplementedError

    def _refresh_connection(self) -> ConnectionInfo:
        """Re-read the connection file (a restarted daemon may have new endpoints)."""
        if self._fixed is not None:
            self.connection = self._fixed
        else:
            self.connection = _read_connection(self.runtime_dir)
            self._check_alive()
        if self.options.protocol_version is None:
            self.version = p.choose_version(self.connection.versions, self.connection.version)
        if self._req_endpoint is not None and self._req_endpoint != self.connection.commands:
            self._close_req()
        return self.connection

    def _check_alive(self) -> None:
        """Raise `Unavailable` when the connection file names an exited process and nothing
        listens on its ipc command socket (a killed daemon: said at once), or has named an
        exited process for a whole request timeout: no retry can reach it, and waiting out
        every retry says nothing more. A daemon restarted within that time (a supervisor,
        a crash and a restart) writes a new file and is reached as before.

        Only for a connection read from the runtime dir: its pid is on this machine.
        """
        info = self.connection
        if self._fixed is not None or info is None or not daemon_gone(info):
            self._dead_since = None
            return
        now = time.monotonic()
        if self._dead_since is None or self._dead_since[0] != info.pid:
            self._dead_since = (info.pid, now)
        if now - self._dead_since[1] >= self.request_timeout or nothing_listens(info.commands):
            raise Unavailable(
                f"no daemon running: the connection file in {self.runtime_dir} names "
                f"pid {info.pid}, which has exited; start `taskdeck serve`"
            )

    @property
    def heartbeat(self) -> float:
        """The daemon's idle heartbeat interval, in seconds."""
        if self.options.heartbeat is not None:
            return self.options.heartbeat
        if self.connection is not None:
            return self.connection.heartbeat
        return 1.0

    def _secure(self, sock: zmq.Socket[Any]) -> None:
        assert self.connection is not None
        key = self.connection.server_public_key
        if key is None:
            return
        pair = self._client_keys or existing_client_keys(self.options.state_dir)
        if pair is None:
            public, secret = zmq.curve_keypair()
            pair = self._client_keys = KeyPair(public=public.decode(), secret=secret.decode())
        sock.curve_serverkey = key.encode()
        sock.curve_publickey = pair.public.encode()
        sock.curve_secretkey = pair.secret.encode()

    def _subscribe(self, sub: zmq.Socket[Any], events: str) -> None:
        """Connect a SUB socket to the daemon's events, every topic, secured like commands."""
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.MAXMSGSIZE, p.MAX_MESSAGE)
        self._secure(sub)
        if events.startswith("tcp://["):
            sub.setsockopt(zmq.IPV6, 1)
        sub.connect(events)
        sub.setsockopt(zmq.SUBSCRIBE, b"")

    def _new_req(self, ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
        """A plain REQ socket connected to the daemon's command endpoint."""
        if self.connection is None:
            self._refresh_connection()
        assert self.connection is not None
        sock: zmq.Socket[Any] = zmq.Socket(ctx, zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_REPLY)
        self._secure(sock)
        if self.connection.commands.startswith("tcp://["):
            sock.setsockopt(zmq.IPV6, 1)
        sock.connect(self.connection.commands)
        self._req_endpoint = self.connection.commands
        return sock

    def _prepare(self, body: p.Command) -> tuple[str, bytes]:
        """A fresh request id and the encoded request.

        Raises:
            BadRequest: the request is over the size cap.
        """
        request_id = os.urandom(16).hex()  # as unique as a uuid4, a quarter of the cost
        data = p.encode(p.Request(id=request_id, version=self.version, origin=self.origin,
                                  body=body))
        if len(data) > p.MAX_MESSAGE:
            raise BadRequest(f"request of {len(data)} bytes exceeds the {p.MAX_MESSAGE} byte cap")
        return request_id, data

    def _before_attempt(self, attempt: int) -> None:
        """Count a retry and look for a restarted daemon's new endpoints before it."""
        if attempt:
            self.retry_count += 1
            with contextlib.suppress(TaskdeckError):
                self._refresh_connection()
            self._check_alive()  # a dead daemon: said after one timeout, not after every retry
        if self.connection is None:
            self._refresh_connection()

    def _gave_up(self) -> Unavailable:
        endpoint = self.connection.commands if self.connection else "?"
        return Unavailable(
            f"the daemon at {endpoint} did not answer ({self.retries} tries, "
            f"{self.request_timeout:g}s each); is `taskdeck serve` running?"
        )
