"""The daemon's ZeroMQ adapter: registry events out on PUB, commands in on a ROUTER socket.

(About 680 lines: binding, publishing and draining share one socket lifecycle; what
the commands do is in core/service.py, the connection guard in core/connections.py.)

The command socket is a ROUTER rather than a REP: a REP socket silently drops a
message whose routing envelope is malformed (a raw DEALER's multi-frame garbage),
which would leave that sender without a reply. A ROUTER sees every message, so
every request is answered, and REQ clients work with it unchanged.

The PUB socket is an XPUB: when a subscriber joins, the daemon publishes a
heartbeat at once, so a syncing client gets its first message in milliseconds
instead of waiting for the next idle heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from core import protocol as p
from core.errors import BadRequest, InvalidState
from core.model import Event
from core.registry import Registry
from core.runtime import (
    CLIENT_KEY_COMMAND,
    ConnectionInfo,
    KeyPair,
    ensure_allowed_clients,
    ensure_private_dir,
    ipc_endpoints,
    is_loopback,
    load_or_create_server_keys,
    open_fd_count,
    private_umask,
    raise_fd_limit,
    remove_connection,
    running_daemon,
    split_tcp,
    write_connection,
)
from core.connections import Connections, connection_cap, fd_reserve
from core.looplock import LoopLock
from core.service import DEDUPE_SIZE, CommandService, JournalLike

log = logging.getLogger(__name__)

HANDSHAKE_MS = 5000
"""Milliseconds a TCP peer has to complete its (CURVE) handshake before it is dropped."""

LISTEN_BACKLOG = 16
"""Connections the kernel holds for the daemon to accept (libzmq's default is 100)."""

REPLY_HWM = 8
"""Replies queued per client before more are dropped: a REQ client has one request in
flight; a client that sends many without reading them cannot pile up replies."""

REQUEST_HWM = 64
"""Requests queued per client before libzmq stops reading from that client."""

DRAIN_BATCH = 256
"""Requests answered per hold of the lock before the loop gets a turn (agents, heartbeats)."""

COMMAND_POLL_MS = 50
"""How long the command thread blocks in one receive before it checks for a stop."""

WAKE_IDLE_MS = 1
"""Milliseconds without a request after which the loop is woken for the work batches left
it (an agent's run to start): a request arriving within them is served first."""

WAKE_DEFER_MAX_MS = 1
"""Milliseconds after the first batch that left the loop work past which the loop is
woken even while requests keep arriving. Checked when a batch ends, so the work may wait
this plus one batch (up to `DRAIN_BATCH` requests). Longer, and the runs it starts in
one go (an agent's first step each) hold up the request that arrives then; shorter, and
it comes back to one wake-up per request."""

BATCH_BYTES = 8 * 1024 * 1024
"""Reply bytes a batch may hold before it is written and sent: replies wait for the batch's
journal write, so large ones (a `list` of thousands of tasks) must not pile up in it."""

_POLLIN = int(zmq.POLLIN)
"""As a plain int: `&` on the enum costs more than reading ZMQ_EVENTS does."""

_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
"""As plain ints: `send_multipart` makes an enum of the flags of every frame (`_send_frames`)."""


class Daemon:
    """Serves a registry over ZeroMQ until stopped.

    Args:
        registry: the registry to serve.
        runtime_dir: where the ipc sockets and the connection file go (made 0700).
        bind: None for ipc sockets in `runtime_dir`; `tcp://HOST:PORT` for TCP, with
            events on PORT and commands on PORT+1 (both chosen by the system for port 0).
            TCP uses CURVE unless `allow_plain_tcp`.
        allow_plain_tcp: serve TCP without CURVE; only on a loopback address.
        journal: optional (`core.service.JournalLike`; core.journal.Journal is one). It
            becomes the registry's recorder while serving: each answer, abort and
            default answer is written through it before it is applied. It is written
            once per batch of requests before their replies, and before any event is
            published; while it has failed, commands that create, end or decide are
            refused.
        heartbeat: seconds of silence on PUB before an idle heartbeat.
        state_dir: where the CURVE keys and the allow-list are (TCP only).
        allowed_clients: Z85 client public keys allowed over CURVE; None reads the
            allow-list file in `state_dir`, made on first use with this user's client key.
        pub_hwm: messages queued per subscriber before the slowest start losing events.
        max_message: largest request accepted, in bytes.
        max_connections: client connections served at once; None:
            `core.connections.MAX_CONNECTIONS`, or less when the open file limit leaves
            less room.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        runtime_dir: Path,
        bind: str | None = None,
        allow_plain_tcp: bool = False,
        journal: JournalLike | None = None,
        heartbeat: float = 1.0,
        state_dir: Path | None = None,
        allowed_clients: Iterable[str] | None = None,
        pub_hwm: int = 10000,
        max_message: int = p.MAX_MESSAGE,
        dedupe_size: int = DEDUPE_SIZE,
        max_connections: int | None = None,
    ) -> None:
        if heartbeat <= 0:
            raise BadRequest("heartbeat must be positive")
        self.registry = registry
        self.runtime_dir = Path(runtime_dir)
        self.bind = bind
        self.allow_plain_tcp = allow_plain_tcp
        self.heartbeat = heartbeat
        self.state_dir = state_dir
        self.allowed_clients = set(allowed_clients) if allowed_clients is not None else None
        self.pub_hwm = pub_hwm
        self.max_message = max_message
        self.max_connections = max_connections
        self.connections: Connections | None = None
        """Open client connections, counted from socket monitors while serving."""
        self._tcp: tuple[str, int] | None = None
        if bind is not None:
            self._tcp = split_tcp(bind)
            if allow_plain_tcp and not is_loopback(self._tcp[0]):
                raise BadRequest(
                    f"plain TCP (no encryption, no authentication) is only allowed on a loopback "
                    f"address, not {self._tcp[0]!r}; drop --insecure-plain-tcp to use CURVE"
                )
        self.service = CommandService(registry, journal=journal, heartbeat=heartbeat,
                                      max_message=max_message, dedupe_size=dedupe_size)
        """Answers the requests; the daemon receives them and sends the replies."""
        self._ctx: zmq.asyncio.Context | None = None
        self._pub: zmq.asyncio.Socket | None = None
        self._pub_raw: zmq.Socket[Any] | None = None
        """A plain view of `_pub` for sending: no future, no EVENTS check per event."""
        self._cmd: zmq.Socket[Any] | None = None
        """The command ROUTER: a plain socket, used only by the command thread."""
        self._commands: threading.Thread | None = None
        """Blocks in libzmq on `_cmd` and answers each batch holding `_lock`."""
        self._lock: LoopLock | None = None
        """The one lock of the registry: see core/looplock.py."""
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._auth: Any = None
        self._curve = False
        """TCP with CURVE: each request's sender key is read from its "User-Id" property."""
        self._tasks: list[asyncio.Task[None]] = []
        self._unlisten: Callable[[], None] | None = None
        self._published = False
        """Set by every publish, cleared by the heartbeat loop."""
        self._connection: ConnectionInfo | None = None
        self._outgoing: list[tuple[bytes, bytes]] = []
        """Events waiting for the journal write of their rows before they are published."""
        self._flush_scheduled = False
        self._announced_error: str | None = None
        """The journal error the last heartbeat carried (see `_announce_journal`)."""
        self._in_batch = False
        """True while a batch of requests is drained: its end publishes the events."""
        self.requests = 0
        """Requests answered so far (any outcome)."""

    @property
    def connection(self) -> ConnectionInfo:
        """Where clients reach this daemon (as written to the connection file)."""
        if self._connection is None:
            raise InvalidState("the daemon is not started")
        return self._connection

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the sockets, write the connection file and start serving.

        Raises:
            InvalidState: another live daemon already uses the runtime dir.
            Unauthorized: the runtime dir is not private.
            BadRequest: a bad bind address.
        """
        ensure_private_dir(self.runtime_dir)
        other = running_daemon(self.runtime_dir)
        if other is not None and await _answers(other):
            raise InvalidState(
                f"a daemon (pid {other.pid}) already serves {self.runtime_dir}; stop it first"
            )
        loop = asyncio.get_running_loop()
        fd_limit = raise_fd_limit()
        self._ctx = zmq.asyncio.Context()
        try:
            events, commands, keys = self._bind_sockets()
            cap = self.max_connections or connection_cap(fd_limit, open_fd_count())
            self.connections = Connections(cap, fd_limit=fd_limit, reserve=fd_reserve(fd_limit))
            for sock, endpoint in ((self._pub, events), (self._cmd, commands)):
                assert sock is not None
                self.connections.watch(sock, self._gate(endpoint))
            self.connections.start()
            connection = ConnectionInfo(
                events=events,
                commands=commands,
                pid=os.getpid(),
                epoch=self.registry.epoch,
                heartbeat=self.heartbeat,
                version=min(self.service.versions),
                versions=list(self.service.versions),
                server_public_key=keys.public if keys is not None else None,
                started_at=time.time(),
            )
            write_connection(self.runtime_dir, connection)
        except BaseException:
            self._close_sockets()
            raise
        self._connection = connection
        self._unlisten = self.registry.listen(self._publish)
        self.service.start()
        self._loop = loop
        self._start_commands(loop)
        self._tasks = [
            loop.create_task(self._beat(), name="taskdeck-heartbeat"),
            loop.create_task(self._watch_subscribers(), name="taskdeck-subscribers"),
        ]
        log.info("serving on %s and %s", commands, events)

    def _bind_sockets(self) -> tuple[str, str, KeyPair | None]:
        assert self._ctx is not None
        pub = self._pub = self._ctx.socket(zmq.XPUB)
        # Plain, not asyncio: served by the command thread blocking in libzmq.
        cmd = self._cmd = zmq.Socket(self._ctx, zmq.ROUTER)
        for sock in (pub, cmd):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_message)
            if self._tcp is not None and ":" in self._tcp[0]:
                sock.setsockopt(zmq.IPV6, 1)
        pub.setsockopt(zmq.SNDHWM, self.pub_hwm)
        for sock in (pub, cmd):
            # Connections the kernel queues for libzmq to accept: when the connection
            # guard shuts the gate, at most these still come in.
            sock.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        cmd.setsockopt(zmq.SNDHWM, REPLY_HWM)
        cmd.setsockopt(zmq.RCVHWM, REQUEST_HWM)
        cmd.setsockopt(zmq.RCVTIMEO, COMMAND_POLL_MS)
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._pub_raw = zmq.Socket.shadow(pub.underlying)
        keys: KeyPair | None = None
        bound: tuple[str, str]
        if self._tcp is None:
            # Bound on hidden paths; the advertised ones are symlinks to them, which the
            # connection guard can remove for a while to turn new clients away.
            events, commands = ipc_endpoints(self.runtime_dir)
            bound = (_hidden(events), _hidden(commands))
        else:
            host, port = self._tcp
            for sock in (pub, cmd):
                # A peer that never finishes its handshake gives its descriptor back
                # after this, not after libzmq's default 30 s.
                sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
            if not self.allow_plain_tcp:
                keys = load_or_create_server_keys(self.state_dir)
                self._start_auth()
                self._curve = True
                for sock in (pub, cmd):
                    sock.curve_secretkey = keys.secret.encode()
                    sock.curve_publickey = keys.public.encode()
                    sock.curve_server = True
            address = f"[{host}]" if ":" in host else host
            events = f"tcp://{address}:{port}"
            commands = f"tcp://{address}:{port + 1 if port else 0}"
            bound = (events, commands)
        with private_umask():
            pub.bind(bound[0])
            cmd.bind(bound[1])
        if self._tcp is None:
            for public, hidden in ((events, bound[0]), (commands, bound[1])):
                link = Path(public.removeprefix("ipc://"))
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()  # a socket a killed daemon left behind
                os.symlink(Path(hidden.removeprefix("ipc://")).name, link)
            return events, commands, keys
        return (
            pub.getsockopt_string(zmq.LAST_ENDPOINT),
            cmd.getsockopt_string(zmq.LAST_ENDPOINT),
            keys,
        )

    def _gate(self, endpoint: str) -> tuple[Path, str] | None:
        """(symlink, target) of an advertised ipc endpoint; None on TCP."""
        if self._tcp is not None:
            return None
        return Path(endpoint.removeprefix("ipc://")), Path(_hidden(endpoint)).name

    def _start_auth(self) -> None:
        """Run a ZAP handler for the CURVE handshakes.

        It admits the allow-listed keys only (the list is made on first use with this
        user's client key: knowing the server's public key proves nothing), and it
        is what makes libzmq stamp each message with its sender's public key (the
        "User-Id" property, Z85), which the audit trail records as `curve_key`.

        The handler runs in its own thread: the asyncio one, stopped and started again
        in one process (a daemon restarted in place), left a stale reader on a reused
        file descriptor and the new handler never saw a request.
        """
        from zmq.auth.thread import ThreadAuthenticator

        allowed = self.allowed_clients
        if allowed is None:
            allowed, created = ensure_allowed_clients(self.state_dir)
            if created is not None:
                log.warning(
                    "TCP clients must be on the allow-list %s; it was made with this user's "
                    "client key. To let another machine in, run `%s` there and add the key "
                    "it prints to that file, then restart.", created, CLIENT_KEY_COMMAND,
                )
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        keys = frozenset(allowed)

        class AllowList:
            def callback(self, domain: str, key: bytes) -> bool:
                return key.decode("ascii", "replace") in keys

        self._auth.configure_curve_callback(domain="*", credentials_provider=AllowList())

    async def stop(self) -> None:
        """Stop serving: sockets closed (LINGER 0), connection file removed. Idempotent."""
        await self._stop_commands()  # no request is answered after this
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        self._flush_events()
        self.service.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._close_sockets()
        if self._connection is not None:
            remove_connection(
                self.runtime_dir, pid=self._connection.pid, epoch=self._connection.epoch
            )
            if self._tcp is None:
                for endpoint in (self._connection.events, self._connection.commands):
                    for path in (endpoint, _hidden(endpoint)):
                        with contextlib.suppress(OSError):
                            os.unlink(path.removeprefix("ipc://"))

    def _close_sockets(self) -> None:
        if self.connections is not None:
            self.connections.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._pub_raw = None  # a shadow: closing `_pub` closes it
        for sock in (self._pub, self._cmd):
            if sock is not None:
                sock.close(linger=0)
        self._pub = self._cmd = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # ------------------------------------------------------------ publishing

    def _publish(self, event: Event) -> None:
        """Queue one registry event; it goes out once the journal has written its rows.

        Inside a batch of requests the batch's end sends it; otherwise it goes at the
        next turn of the loop, with whatever else changed in this one.
        """
        self._outgoing.append((p.EVENT_TOPIC, p.ENCODER.encode(event)))
        if not self._in_batch and not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_events)

    def _flush_events(self) -> None:
        """Write the rows of the queued events, then publish them, in seq order."""
        self._flush_scheduled = False
        if not self._outgoing:
            return
        self.service.write()  # a failed journal is flagged in hello and heartbeats
        self._send_outgoing()

    def _send_outgoing(self) -> None:
        """Publish the queued events (their rows are written), then a failed journal."""
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        for topic, data in outgoing:
            self._send_pub(topic, data)
        self._announce_journal()

    def _announce_journal(self) -> None:
        """Send a heartbeat at once when the journal has just failed: a busy daemon sends
        none of its own, and dashboards must say that decisions are refused."""
        if self.journal_error != self._announced_error:
            self._announced_error = self.journal_error
            self._send_heartbeat()

    @property
    def journal(self) -> JournalLike | None:
        """The journal the service writes (None: none)."""
        return self.service.journal

    @property
    def journal_error(self) -> str | None:
        """Why the journal cannot record decisions now; None when it can (or there is none)."""
        return self.service.journal_error

    def _send_heartbeat(self) -> None:
        self._flush_events()  # a heartbeat must not announce a seq still queued
        beat = p.Heartbeat(epoch=self.registry.epoch, seq=self.registry.seq, ts=time.time(),
                           journal_error=self.journal_error)
        self._send_pub(p.HEARTBEAT_TOPIC, p.ENCODER.encode(beat))

    def _send_pub(self, topic: bytes, data: bytes) -> None:
        raw = self._pub_raw
        if raw is None:
            return
        # Non-blocking, through the plain view: the asyncio socket's send (a future and
        # an EVENTS check per message) cost three times the send itself, and reading the
        # clock here as much again (docs/BENCHMARKS.md). A PUB socket drops what a slow
        # subscriber cannot take; the subscriber sees the hole as a seq gap (or a
        # heartbeat ahead) and resyncs.
        try:
            _send_frames(raw, [topic, data])
        except zmq.Again:
            pass
        except zmq.ZMQError as exc:
            log.warning("event not published: %s", exc)
        self._published = True

    async def _beat(self) -> None:
        """Publish a heartbeat once `heartbeat` seconds pass with nothing published.

        Publishing only sets a flag, checked eight times per interval: the longest
        silence is 1.125 intervals, under the clients' stale mark of 1.5.
        """
        loop = asyncio.get_running_loop()
        tick = self.heartbeat / 8
        last = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self._published:
                self._published = False
                last = now
            elif now - last >= self.heartbeat - tick / 2:
                self._send_heartbeat()
                self._published = False
                last = now

    async def _watch_subscribers(self) -> None:
        """Greet every new subscription with a heartbeat, so clients sync at once.

        Sends through the plain view can consume the wake-up the asyncio socket waits
        on, so the wait is bounded (an eighth of a heartbeat) and the queue drained
        without blocking.
        """
        assert self._pub is not None and self._pub_raw is not None
        pub, raw = self._pub, self._pub_raw
        timeout = max(1, int(self.heartbeat * 1000 / 8))
        while True:
            await pub.poll(timeout, zmq.POLLIN)
            while True:
                try:
                    frame = raw.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if frame[:1] == b"\x01":
                    self._send_heartbeat()

    # -------------------------------------------------------------- commands

    def _start_commands(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the command thread; from now on this (loop) thread holds the registry's
        lock except while its loop waits for I/O (core/looplock.py)."""
        self._lock = LoopLock(loop)
        self._lock.install()
        self._stopping = False
        self._commands = threading.Thread(target=self._serve_commands, name="taskdeck-commands",
                                          daemon=True)
        self._commands.start()

    async def _stop_commands(self) -> None:
        """Stop the command thread (it finishes the batch it holds) and give the loop back."""
        self._stopping = True
        thread, self._commands = self._commands, None
        if thread is not None:
            # Awaited, so that the loop waits in its selector without the lock, which
            # the thread may need to finish its batch.
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        if self._lock is not None:
            self._lock.uninstall()
            self._lock = None

    def _serve_commands(self) -> None:
        """The command thread: block in libzmq for a request, then answer it and every
        other queued one as a batch, holding the registry's lock; never raises.

        Blocking in libzmq's receive costs no selector wake-up or loop callback per
        request (docs/BENCHMARKS.md). The replies wait for the end of the batch: the
        journal writes the batch's rows in one transaction, then the replies are sent,
        then its events published (`_end_batch`).
        """
        cmd, lock = self._cmd, self._lock
        assert cmd is not None and lock is not None
        curve = self._curve
        wake = _DeferredWake(cmd, lock)
        while not self._stopping:
            try:
                first = cmd.recv_multipart(copy=not curve)
            except zmq.Again:  # nothing within the receive timeout: the loop's turn, if owed
                wake.pay()
                continue  # and look at `_stopping` again
            except zmq.ZMQError as exc:  # closed under us: stop() is on its way
                log.debug("command socket: %s", exc)
                wake.pay()
                return
            try:
                with lock.borrow(defer_wake=True):
                    self._serve_batch(cmd, first)
            except Exception:  # a bug must cost one batch, never the command thread
                log.exception("unexpected failure while serving a batch of requests")
            wake.after_batch()
        wake.pay()

    def _serve_batch(self, cmd: zmq.Socket[Any], first: list[Any]) -> None:
        """Answer `first` and the requests queued behind it, then end the batch."""
        batch: list[list[Any]] = []
        recorded: list[tuple[int, str]] = []
        # Group commit: the batch's decisions go into one transaction as they apply, and
        # share the batch's commit and fsync, before any of their replies or events leave.
        with self.service.deferred_syncs():
            self._in_batch = True
            try:
                self._answer(first, batch, recorded)
                self._drain_batch(cmd, batch, recorded)
            finally:
                self._in_batch = False
                self._end_batch(batch, recorded)

    def _drain_batch(
        self, cmd: zmq.Socket[Any], batch: list[list[Any]], recorded: list[tuple[int, str]]
    ) -> None:
        """Answer the requests already queued, up to `DRAIN_BATCH` (or `BATCH_BYTES` of replies)."""
        curve = self._curve
        held = len(batch[0][1]) if batch else 0
        for _ in range(DRAIN_BATCH - 1):
            if held > BATCH_BYTES:
                return
            try:
                # ZMQ_EVENTS rather than a receive that fails: an Again costs three times
                # the check.
                if not cmd.getsockopt(zmq.EVENTS) & _POLLIN:
                    return
                received = cmd.recv_multipart(_NOBLOCK, copy=not curve)
            except zmq.ZMQError as exc:  # Again, or closed under us: stop() is on its way
                log.debug("command socket: %s", exc)
                return
            held += self._answer(received, batch, recorded)

    def _answer(
        self, received: list[Any], batch: list[list[Any]], recorded: list[tuple[int, str]]
    ) -> int:
        """Handle one request; its [envelope, reply] goes to `batch`, and (its index,
        request id) to `recorded` when its reply stands only once the journal has
        written the batch. Returns the reply's size."""
        curve_key: str | None = None
        if self._curve:
            curve_key = _sender_key(received[-1])
            frames = [frame.bytes for frame in received]
        else:
            frames = received
        envelope, payload = _split_envelope(frames)
        try:
            reply, request_id = self.service.handle(payload, curve_key)
        except Exception as exc:  # a bug must cost one request, never the daemon
            log.exception("unexpected failure while handling a request")
            reply, request_id = p.error_reply("", "INTERNAL", f"internal error: {exc!r}"), None
        if request_id is not None:
            recorded.append((len(batch), request_id))
        batch.append([envelope, reply])
        return len(reply)

    def _end_batch(self, batch: list[list[Any]], recorded: list[tuple[int, str]]) -> None:
        """Write the batch's rows (one transaction), then reply, then publish its events.

        An acknowledged open, ask or finish is thus in the file before its "ok", and no
        event goes out before its row. If the write fails, the requests that created or
        ended something get JOURNAL_FAILED instead of "ok" (the change stays in memory
        only, and `failed` says so). Replies go before events: the client waiting on
        its reply is the one a person watches.
        """
        error = self.service.write() if (batch or self._outgoing) else None
        if error is not None:
            for index, request_id in recorded:
                batch[index][1] = self.service.unrecorded(request_id, error)
        for envelope, reply in batch:
            self._send_reply(envelope, reply)
        self._send_outgoing()

    def _send_reply(self, envelope: list[bytes], reply: bytes) -> None:
        self.requests += 1
        if self._cmd is None:
            return
        try:
            _send_frames(self._cmd, [*envelope, reply])
        except zmq.Again:
            log.warning("reply dropped: the client's queue is full")
        except zmq.ZMQError as exc:
            log.warning("reply dropped: %s", exc)


class _DeferredWake:
    """When the command thread wakes the loop for the work its batches left it (an agent's
    run to start, a sooner timer): once no request follows within `WAKE_IDLE_MS`, or at
    the end of the first batch that ends `WAKE_DEFER_MAX_MS` or more after the first
    batch that left some.

    Woken after every request, the loop's thread ran an agent's first step while the
    client waited for its reply on a busy core, and each request paid a wake-up
    (docs/BENCHMARKS.md). The reply still goes first; the run starts about a
    millisecond later (under a flood of requests, a batch more at most).
    """

    def __init__(self, cmd: zmq.Socket[Any], lock: LoopLock) -> None:
        self.cmd = cmd
        self.lock = lock
        self.since: float | None = None
        """When the first batch the loop was not woken for ended."""

    def after_batch(self) -> None:
        """After each batch: wait for the command path to go idle, or wake the loop now
        if it has waited long enough."""
        if not self.lock.wake_owed:
            return
        if self.since is None:
            self.since = time.monotonic()
            _receive_timeout(self.cmd, WAKE_IDLE_MS)
        elif (time.monotonic() - self.since) * 1000 >= WAKE_DEFER_MAX_MS:
            self.pay()

    def pay(self) -> None:
        """Wake the loop if it is owed a wake-up (the command path is idle, or stops)."""
        if self.since is not None:
            self.since = None
            _receive_timeout(self.cmd, COMMAND_POLL_MS)
        self.lock.wake()


def _receive_timeout(sock: zmq.Socket[Any], ms: int) -> None:
    with contextlib.suppress(zmq.ZMQError):  # closed under us: stop() is on its way
        sock.setsockopt(zmq.RCVTIMEO, ms)


def _send_frames(sock: zmq.Socket[Any], frames: list[Any]) -> None:
    """`send_multipart(frames, NOBLOCK)` without its per-frame type checks and flag enums
    (about a microsecond a frame, on every reply and event)."""
    send = sock.send
    for frame in frames[:-1]:
        send(frame, _NOBLOCK | _SNDMORE)
    send(frames[-1], _NOBLOCK)


def _hidden(endpoint: str) -> str:
    """The path an advertised ipc endpoint's symlink points to: ".name" beside it."""
    path = Path(endpoint.removeprefix("ipc://"))
    return f"ipc://{path.with_name('.' + path.name)}"


async def _answers(info: ConnectionInfo, timeout: float = 0.5) -> bool:
    """True when the daemon a connection file describes answers a hello (it is not stale)."""
    if info.server_public_key is not None:
        return True  # cannot probe without a client key; trust the live pid
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(info.commands)
        request = p.Request(id=f"probe-{os.getpid()}", version=p.PROTOCOL_VERSION, body=p.Hello())
        await sock.send(p.encode(request))
        return bool(await sock.poll(int(timeout * 1000), zmq.POLLIN))
    except zmq.ZMQError:
        return False
    finally:
        sock.close(linger=0)
        ctx.term()


def _sender_key(frame: zmq.Frame) -> str | None:
    """The Z85 public key the ZAP handler vouched for (None when it set no "User-Id")."""
    try:
        user_id = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user_id or None


def _split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(routing envelope, request frames) of a message read from the ROUTER socket.

    A REQ peer sends [identity, b"", request]; a raw DEALER may send anything. The
    envelope runs to the first empty frame, or is just the identity when there is none.
    """
    for index in range(1, len(frames)):
        if not frames[index]:
            return frames[: index + 1], frames[index + 1:]
    return frames[:1], frames[1:]


async def serve_forever(
    registry: Registry,
    runtime_dir: Path,
    *,
    stop_signals: bool = True,
    on_ready: Callable[[Daemon], object] | None = None,
    **options: Any,
) -> None:
    """Serve `registry` until SIGINT/SIGTERM (or cancellation), then shut down cleanly.

    On the way out the sockets are closed, the connection file removed and the
    registry's runs cancelled.

    Args:
        registry: the registry to serve.
        runtime_dir: where the sockets and the connection file go.
        stop_signals: install SIGINT/SIGTERM handlers that stop the daemon.
        on_ready: called with the started daemon (e.g. to print where it listens).
        **options: passed on to `Daemon`.
    """
    try:
        with until_signalled(stop_signals) as stop:
            async with Daemon(registry, runtime_dir=runtime_dir, **options) as daemon:
                if on_ready is not None:
                    on_ready(daemon)
                await stop.wait()
    finally:
        await registry.close()


@contextlib.contextmanager
def until_signalled(enabled: bool = True) -> Iterator[asyncio.Event]:
    """An event SIGINT or SIGTERM sets while inside (no handlers when not `enabled`)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[int] = []
    if enabled:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):
                continue
            installed.append(signum)
    try:
        yield stop
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
