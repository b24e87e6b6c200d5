"""Client library: safe commands (Lazy Pirate) and a consistent live mirror (Clone pattern)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import enum
import getpass
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import zmq
import zmq.asyncio

from core import protocol as p
from core.errors import (
    ERRORS_BY_CODE,
    BadRequest,
    InvalidState,
    NotPending,
    PromptTimedOut,
    TaskdeckError,
    Unavailable,
    UnknownTask,
)
from core.mirror import Mirror, OutOfSync
from core.model import (
    EndReason,
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Snapshot,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
    TaskStatus,
)
from core.runtime import (
    ConnectionInfo,
    KeyPair,
    daemon_gone,
    default_runtime_dir,
    existing_client_keys,
)
from core.runtime import read_connection as _read_connection

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=p.Result)

STALE_AFTER = 1.5
"""Heartbeat intervals of silence before the mirror says it is stale."""

DISCONNECTED_AFTER = 3.0
"""Heartbeat intervals of silence before the mirror says it is disconnected and reconnects."""

_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
"""As plain ints: `&` on the enum costs about what reading ZMQ_EVENTS does."""

LOCAL_GRACE = 0.5
"""Seconds an `ask` with a timeout waits past it for the daemon's word before giving up alone."""

BATCH_LIMIT = 5000
"""Most messages applied before `on_change` is called (keeps a flood from starving the loop)."""


class ConnectionState(str, enum.Enum):
    """How current the mirror is."""

    CONNECTING = "connecting"
    """Not synced yet: subscribing or loading the first snapshot."""
    LIVE = "live"
    """Synced, and the daemon was heard from recently."""
    STALE = "stale"
    """Synced, but nothing heard for 1.5 heartbeat intervals: the view may be behind."""
    DISCONNECTED = "disconnected"
    """Nothing heard for 3 intervals (or no daemon); reconnecting in the background."""


@dataclasses.dataclass
class Changes:
    """One batch of mirror updates, handed to `on_change`."""

    task_ids: set[int] = dataclasses.field(default_factory=set)
    """Tasks created, changed or evicted in this batch."""
    opened: list[Prompt] = dataclasses.field(default_factory=list)
    """Prompts that opened in this batch (bell and notification)."""
    resynced: bool = False
    """The mirror was reloaded from a snapshot: redraw everything."""
    state: ConnectionState = ConnectionState.LIVE
    """The connection state after this batch."""
    closed: list[Prompt] = dataclasses.field(default_factory=list)
    """Prompts answered, cancelled or timed out in this batch."""
    evicted: list[int] = dataclasses.field(default_factory=list)
    """Tasks that left the registry in this batch (also in `task_ids`)."""


class _Disconnected(Exception):
    """The daemon fell silent; reconnect."""


class _Resync(Exception):
    """The mirror missed something; take a fresh snapshot."""


def _origin(client_name: str) -> p.Origin:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.geteuid())
    return p.Origin(
        user=user[: p.MAX_NAME],
        host=socket.gethostname()[: p.MAX_NAME],
        pid=os.getpid(),
        client=client_name[: p.MAX_NAME],
    )


def _raise_error(error: p.Error | None) -> None:
    if error is None:
        raise TaskdeckError("the daemon refused the request without saying why")
    cls = ERRORS_BY_CODE.get(error.code)
    exc = (cls or TaskdeckError)(error.message)
    if cls is None:
        exc.code = error.code
    raise exc


# ------------------------------------------------------------ commands, sans I/O
#
# What a command sends and what its caller gets back, with no socket in sight: the
# async `Client` and the blocking `SyncClient` differ only in how they move the bytes.


@dataclasses.dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One command: the body to send, the result type the daemon must answer, what to return."""

    body: p.Command
    kind: type[p.Result]
    take: Callable[[Any], T]


def _hello() -> _Call[dict[str, Any]]:
    def take(result: p.HelloResult) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(result)
        out.pop("type", None)
        return out

    return _Call(p.Hello(), p.HelloResult, take)


def _snapshot() -> _Call[Snapshot]:
    return _Call(p.GetSnapshot(), p.SnapshotResult, lambda r: r.snapshot)


def _list_tasks(
    agent: str | None,
    status: TaskStatus | str | None,
    parent_id: int | None,
    limit: int,
    roots_only: bool,
    before: int | None,
) -> _Call[list[Task]]:
    if status is not None and not isinstance(status, TaskStatus):
        try:
            status = TaskStatus(status)
        except ValueError:
            names = ", ".join(s.value for s in TaskStatus)
            raise BadRequest(f"unknown status {status!r} (one of {names})") from None
    body = p.ListTasks(
        agent=agent,
        status=status,
        parent_id=parent_id,
        limit=limit,
        roots_only=roots_only,
        before=before,
    )
    return _Call(body, p.TasksResult, lambda r: r.tasks)


def _get(task_id: int) -> _Call[tuple[Task, list[Prompt]]]:
    return _Call(p.GetTask(task_id=task_id), p.TaskDetail, lambda r: (r.task, r.prompts))


def _history(task_id: int | None, limit: int) -> _Call[list[p.Decision]]:
    return _Call(p.History(task_id=task_id, limit=limit), p.HistoryResult, lambda r: r.entries)


def _submit(
    agent: str, description: str, parent_id: int | None, timeout: float | None
) -> _Call[Task]:
    body = p.Submit(agent=agent, description=description, parent_id=parent_id, timeout=timeout)
    return _Call(body, p.TaskResult, lambda r: r.task)


def _answer(prompt_id: int, text: str, reason: str | None, by: str | None) -> _Call[Prompt]:
    body = p.Answer(prompt_id=prompt_id, text=text, reason=reason, by=by)
    return _Call(body, p.PromptResult, lambda r: r.prompt)


def _answer_task(
    task_id: int, text: str, reason: str | None, prompt_id: int | None, by: str | None
) -> _Call[Prompt]:
    body = p.AnswerTask(task_id=task_id, text=text, reason=reason, prompt_id=prompt_id, by=by)
    return _Call(body, p.PromptResult, lambda r: r.prompt)


def _abort(task_id: int, only: bool) -> _Call[list[int]]:
    return _Call(p.Abort(task_id=task_id, only=only), p.AbortResult, lambda r: r.task_ids)


def _accept(raw: bytes, request_id: str) -> p.Reply | None:
    """The reply to `request_id` read from `raw`; None for a stale reply to another request.

    Raises:
        TaskdeckError: the bytes are not a reply.
    """
    try:
        reply = p.REPLY_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise TaskdeckError(f"the daemon sent an unreadable reply: {exc}") from None
    return reply if reply.id in (request_id, "") else None


def _result(reply: p.Reply, kind: type[R]) -> R:
    """The reply's result, checked to be `kind`.

    Raises:
        TaskdeckError: the daemon's error, as its matching subclass, or a result of another type.
    """
    if not reply.ok:
        _raise_error(reply.error)
    result = reply.result
    if not isinstance(result, kind):
        raise TaskdeckError(
            f"the daemon answered {type(result).__name__} where {kind.__name__} was expected"
        )
    return result


def _settle_none(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Endpoint:
    """Where the daemon is and how to reach its command socket: what both clients share.

    Requests follow the Lazy Pirate pattern: wait `request_timeout` for the reply,
    else close the socket (LINGER 0), re-read the connection file, open a new one and
    send the same request again, with the same request id (so the daemon applies it
    once), at most `retries` times.
    """

    def __init__(
        self,
        runtime_dir: Path | None = None,
        *,
        connection: ConnectionInfo | None = None,
        client_name: str = "cli",
        request_timeout: float = 2.5,
        retries: int = 3,
        heartbeat: float | None = None,
        client_keys: KeyPair | None = None,
        state_dir: Path | None = None,
        rcvhwm: int = 100_000,
        protocol_version: int = p.PROTOCOL_VERSION,
    ) -> None:
        if connection is None and runtime_dir is None:
            runtime_dir = default_runtime_dir()
        self.runtime_dir = Path(runtime_dir) if runtime_dir is not None else None
        self._fixed = connection
        self.connection = connection
        self.client_name = client_name
        self.request_timeout = request_timeout
        self.retries = max(1, retries)
        self._heartbeat = heartbeat
        self._client_keys = client_keys
        self._state_dir = state_dir
        self.rcvhwm = rcvhwm
        self.protocol_version = protocol_version
        self.origin = _origin(client_name)
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
        if self._req_endpoint is not None and self._req_endpoint != self.connection.commands:
            self._close_req()
        return self.connection

    def _check_alive(self) -> None:
        """Raise `Unavailable` when the connection file has named an exited process for a
        whole request timeout: no retry can reach it, and waiting out every retry says
        nothing more. A daemon restarted within that time (a supervisor, a crash and a
        restart) writes a new file and is reached as before.

        Only for a connection read from the runtime dir: its pid is on this machine.
        """
        info = self.connection
        if self._fixed is not None or info is None or not daemon_gone(info):
            self._dead_since = None
            return
        now = time.monotonic()
        if self._dead_since is None or self._dead_since[0] != info.pid:
            self._dead_since = (info.pid, now)
        if now - self._dead_since[1] >= self.request_timeout:
            raise Unavailable(
                f"no daemon running: the connection file in {self.runtime_dir} names "
                f"pid {info.pid}, which has exited; start `taskdeck serve`"
            )

    @property
    def heartbeat(self) -> float:
        """The daemon's idle heartbeat interval, in seconds."""
        if self._heartbeat is not None:
            return self._heartbeat
        if self.connection is not None:
            return self.connection.heartbeat
        return 1.0

    def _secure(self, sock: zmq.Socket[Any]) -> None:
        assert self.connection is not None
        key = self.connection.server_public_key
        if key is None:
            return
        pair = self._client_keys or existing_client_keys(self._state_dir)
        if pair is None:
            public, secret = zmq.curve_keypair()
            pair = self._client_keys = KeyPair(public=public.decode(), secret=secret.decode())
        sock.curve_serverkey = key.encode()
        sock.curve_publickey = pair.public.encode()
        sock.curve_secretkey = pair.secret.encode()

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
        data = p.encode(
            p.Request(id=request_id, version=self.protocol_version, origin=self.origin, body=body)
        )
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


class Client(_Endpoint):
    """Talks to one daemon: commands with timeouts and retries, and an optional live mirror.

    Args:
        runtime_dir: where the daemon's connection file is (default: ours); re-read on
            reconnect, so a restarted daemon is found again.
        connection: use these endpoints instead of reading the connection file.
        client_name: recorded as the origin's client ("cli", "tui", "ask"...).
        request_timeout: seconds to wait for each reply before retrying.
        retries: attempts per request (the Lazy Pirate "REQUEST_RETRIES"); after the last
            one the request fails with `Unavailable`.
        heartbeat: the daemon's heartbeat interval; None takes it from the connection file.
        client_keys: CURVE key pair for TCP daemons; None uses the one in the state dir,
            or a fresh throw-away pair.
        state_dir: where to look for the client key pair.
        rcvhwm: events buffered before the mirror starts losing them (and resyncs).
        protocol_version: the version requests declare (tests use another to check refusal).
    """

    def __init__(
        self,
        runtime_dir: Path | None = None,
        *,
        connection: ConnectionInfo | None = None,
        client_name: str = "cli",
        request_timeout: float = 2.5,
        retries: int = 3,
        heartbeat: float | None = None,
        client_keys: KeyPair | None = None,
        state_dir: Path | None = None,
        rcvhwm: int = 100_000,
        protocol_version: int = p.PROTOCOL_VERSION,
    ) -> None:
        super().__init__(
            runtime_dir,
            connection=connection,
            client_name=client_name,
            request_timeout=request_timeout,
            retries=retries,
            heartbeat=heartbeat,
            client_keys=client_keys,
            state_dir=state_dir,
            rcvhwm=rcvhwm,
            protocol_version=protocol_version,
        )
        self.mirror = Mirror()
        self.state = ConnectionState.CONNECTING
        self.resync_count = 0
        """Snapshots loaded into the mirror, since this client was made."""
        self._ctx: zmq.asyncio.Context | None = None
        self._req: zmq.Socket[Any] | None = None
        """The command socket: plain, woken through the loop's reader on its FD."""
        self._req_fd: int | None = None
        self._req_loop: asyncio.AbstractEventLoop | None = None
        self._req_ready: asyncio.Future[None] | None = None
        """Set by the reader when the command socket may have a reply."""
        self._lock = asyncio.Lock()
        self._mirror_task: asyncio.Task[None] | None = None
        self._on_change: Callable[[Changes], None] | None = None
        self._synced = asyncio.Event()
        self._prompt_waiters: dict[int, tuple[Prompt, asyncio.Future[tuple[Task, Prompt]]]] = {}
        """Prompt id -> (the prompt as asked, the future an `ask` waits on)."""
        self._external: set[ExternalTask] = set()
        self._closed = False

    # -------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Read the connection file and open the command socket (no request is sent).

        Raises:
            Unavailable: no daemon is running on the runtime dir.
            VersionMismatch: the daemon speaks another protocol version.
        """
        self._refresh_connection()
        self._open_req()

    async def close(self) -> None:
        """Stop the mirror and lease heartbeats, close every socket (LINGER 0)."""
        self._closed = True
        for task in list(self._external):
            await task.close()
        if self._mirror_task is not None:
            self._mirror_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mirror_task
            self._mirror_task = None
        for _, future in self._prompt_waiters.values():
            if not future.done():
                future.set_exception(Unavailable("the client was closed"))
        self._prompt_waiters.clear()
        self._close_req()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None

    def _context(self) -> zmq.asyncio.Context:
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        return self._ctx

    def _open_req(self) -> zmq.Socket[Any]:
        loop = asyncio.get_running_loop()
        if self._req is not None:
            if self._req_loop is loop:
                return self._req
            self._close_req()  # used from another loop (a second asyncio.run): start afresh
        sock = self._new_req(self._context())
        fd = sock.getsockopt(zmq.FD)
        loop.add_reader(fd, self._req_signalled)
        self._req, self._req_fd, self._req_loop = sock, fd, loop
        return sock

    def _close_req(self) -> None:
        if self._req is None:
            return
        loop, fd = self._req_loop, self._req_fd
        if loop is not None and fd is not None and not loop.is_closed():
            loop.remove_reader(fd)  # before close: the FD number may be reused
        self._req.close(linger=0)
        self._req = self._req_fd = self._req_loop = None
        self._req_endpoint = None

    def _req_signalled(self) -> None:
        ready = self._req_ready
        if ready is not None and not ready.done():
            ready.set_result(None)
        elif self._req is not None:
            # Nobody waits: read the state so the edge-triggered FD re-arms instead of
            # staying readable and waking the loop on every turn.
            with contextlib.suppress(zmq.ZMQError):
                self._req.getsockopt(zmq.EVENTS)

    async def _req_event(self, sock: zmq.Socket[Any], event: int, timeout: float) -> bool:
        """Wait until the command socket can `event` (POLLIN/POLLOUT); False on timeout.

        The FD signals a change, not a state: ZMQ_EVENTS is read after every wake-up
        (which re-arms it) and before waiting, so an edge consumed elsewhere is not missed.
        """
        if sock.getsockopt(zmq.EVENTS) & event:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = self._req_ready = loop.create_future()
            timer = loop.call_at(deadline, _settle_none, ready)
            try:
                await ready
            finally:
                timer.cancel()
                self._req_ready = None
            if sock.getsockopt(zmq.EVENTS) & event:
                return True
            if loop.time() >= deadline:
                return False

    # --------------------------------------------------------------- requests

    async def request(self, body: p.Command) -> p.ResultBody | None:
        """Send one command and return its result, retrying with the same request id.

        Raises:
            Unavailable: no reply after `retries` attempts of `request_timeout` seconds.
            TaskdeckError: the daemon's error, as its matching subclass.
        """
        reply = await self._reply(body)
        if not reply.ok:
            _raise_error(reply.error)
        return reply.result

    async def _reply(self, body: p.Command) -> p.Reply:
        if self._closed:
            raise Unavailable("the client is closed")
        request_id, data = self._prepare(body)
        async with self._lock:
            return await self._exchange(request_id, data)

    async def _exchange(self, request_id: str, data: bytes) -> p.Reply:
        """Lazy Pirate over the plain REQ socket, waiting through the loop's reader.

        ZMQ_EVENTS is read before any wait, so a reply already there is taken with no
        future; otherwise one future waits for the reader: no task and no zmq.asyncio
        poll per request (docs/BENCHMARKS.md).
        """
        timeout = self.request_timeout
        for attempt in range(self.retries):
            self._before_attempt(attempt)
            sock = self._open_req()
            done = False
            try:
                try:
                    sock.send(data, zmq.NOBLOCK)
                except zmq.Again:  # no pipe to the daemon yet
                    if not await self._req_event(sock, _POLLOUT, timeout):
                        continue
                    sock.send(data, zmq.NOBLOCK)
                while await self._req_event(sock, _POLLIN, timeout):
                    try:
                        raw = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        continue
                    reply = _accept(raw, request_id)
                    if reply is not None:
                        done = True
                        return reply
            finally:
                if not done:  # timed out, failed or cancelled: the socket is unusable
                    self._close_req()
        raise self._gave_up()

    async def _call(self, body: p.Command, kind: type[R]) -> R:
        return _result(await self._reply(body), kind)

    async def _do(self, call: _Call[T]) -> T:
        return call.take(await self._call(call.body, call.kind))

    # ---------------------------------------------------------------- commands

    async def hello(self) -> dict[str, Any]:
        """The daemon's version, epoch, seq, pid, agents and heartbeat, as a dict."""
        return await self._do(_hello())

    async def snapshot(self) -> Snapshot:
        """Every task and pending prompt, and the seq they reflect."""
        return await self._do(_snapshot())

    async def list_tasks(
        self,
        *,
        agent: str | None = None,
        status: TaskStatus | str | None = None,
        parent_id: int | None = None,
        limit: int = 100,
        roots_only: bool = False,
        before: int | None = None,
    ) -> list[Task]:
        """Tasks newest first, filtered, at most `limit`."""
        return await self._do(_list_tasks(agent, status, parent_id, limit, roots_only, before))

    async def get(self, task_id: int) -> tuple[Task, list[Prompt]]:
        """A task and every prompt it asked, oldest first."""
        return await self._do(_get(task_id))

    async def history(self, *, task_id: int | None = None, limit: int = 200) -> list[p.Decision]:
        """Who answered or aborted what, oldest first: the last `limit` decisions.

        With `task_id`, only the decisions that touched that task, including the abort
        of an ancestor that ended it.

        Raises:
            InvalidState: the daemon keeps no journal.
        """
        return await self._do(_history(task_id, limit))

    async def submit(
        self,
        agent: str,
        description: str,
        *,
        parent_id: int | None = None,
        timeout: float | None = None,
    ) -> Task:
        """Start a task for one of the daemon's agents."""
        return await self._do(_submit(agent, description, parent_id, timeout))

    async def answer(
        self, prompt_id: int, text: str, *, reason: str | None = None, by: str | None = None
    ) -> Prompt:
        """Answer a pending prompt; returns it answered.

        Raises:
            AlreadyAnswered: somebody answered first.
            NotPending: it was cancelled or timed out.
            UnknownPrompt: no such prompt.
        """
        return await self._do(_answer(prompt_id, text, reason, by))

    async def answer_task(
        self,
        task_id: int,
        text: str,
        *,
        reason: str | None = None,
        prompt_id: int | None = None,
        by: str | None = None,
    ) -> Prompt:
        """Answer the prompt the task waits on now (or check it is `prompt_id`).

        Raises:
            InvalidState: the task waits on no question.
        """
        return await self._do(_answer_task(task_id, text, reason, prompt_id, by))

    async def abort(self, task_id: int, *, only: bool = False) -> list[int]:
        """End the task and (unless `only`) its subtree; returns the ids it ended."""
        return await self._do(_abort(task_id, only))

    async def open_task(
        self,
        description: str,
        *,
        agent: str = "external",
        parent_id: int | None = None,
        lease: float = 10.0,
        timeout: float | None = None,
    ) -> ExternalTask:
        """Open a task this process reports on; its lease is renewed in the background."""
        body = p.Open(
            description=description, agent=agent, parent_id=parent_id, lease=lease, timeout=timeout
        )
        task = (await self._call(body, p.TaskResult)).task
        handle = ExternalTask(self, task, lease)
        self._external.add(handle)
        return handle

    # ------------------------------------------------------------ live mirror

    async def start_mirror(self, on_change: Callable[[Changes], None] | None = None) -> None:
        """Keep `mirror` up to date in the background, calling `on_change` after each batch.

        Returns at once; `wait_synced` waits for the first snapshot. Reconnects and
        resyncs on its own until `close()`.
        """
        if on_change is not None:
            self._on_change = on_change
        if self._mirror_task is None or self._mirror_task.done():
            self._mirror_task = asyncio.get_running_loop().create_task(
                self._run_mirror(), name="taskdeck-mirror"
            )

    async def wait_synced(self, timeout: float = 5.0) -> None:
        """Wait until the mirror holds a snapshot and is live.

        Raises:
            Unavailable: not synced within `timeout` seconds.
        """
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            where = self.runtime_dir or (self.connection and self.connection.events)
            raise Unavailable(
                f"could not sync with the daemon ({where}) within {timeout:g}s"
            ) from None

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is not ConnectionState.LIVE and state is not ConnectionState.STALE:
            self._synced.clear()
        self._notify(Changes(state=state))

    def _notify(self, changes: Changes) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(changes)
        except Exception:  # a broken view must not stop the mirror
            log.exception("on_change callback failed")

    async def _run_mirror(self) -> None:
        while not self._closed:
            try:
                await self._mirror_session()
            except (_Disconnected, Unavailable) as exc:
                log.info("mirror disconnected: %s", exc)
            except TaskdeckError as exc:
                log.warning("mirror cannot sync: %s", exc)
            self._set_state(ConnectionState.DISCONNECTED)
            if self._fixed is None:
                # The connection file may be missing while a daemon restarts: wait a beat.
                with contextlib.suppress(TaskdeckError):
                    self._refresh_connection()
                    continue
                await asyncio.sleep(self.heartbeat)

    async def _mirror_session(self) -> None:
        """Subscribe, sync, and apply events until the daemon falls silent."""
        conn = self._refresh_connection()
        sub = self._context().socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, self.rcvhwm)
            sub.setsockopt(zmq.MAXMSGSIZE, p.MAX_MESSAGE)
            self._secure(sub)
            if conn.events.startswith("tcp://["):
                sub.setsockopt(zmq.IPV6, 1)
            sub.connect(conn.events)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            # The first message proves the subscription is live: events from now on reach us.
            if not await sub.poll(int(self.heartbeat * DISCONNECTED_AFTER * 1000), zmq.POLLIN):
                raise _Disconnected(f"no heartbeat from {conn.events}")
            while True:
                try:
                    await self._sync_and_follow(sub)
                except _Resync as exc:
                    log.info("mirror resyncing: %s", exc)
        finally:
            sub.close(linger=0)

    async def _sync_and_follow(self, sub: zmq.asyncio.Socket) -> None:
        """Load a snapshot, drop what it already holds, then apply live batches."""
        snapshot = await self.snapshot()
        was_synced = self.mirror.synced
        if self.mirror.epoch != snapshot.epoch:
            # A restarted daemon may reuse ids: old prompt history would be misleading.
            self.mirror.history.clear()
            self.mirror.prompts.clear()
        before_tasks = set(self.mirror.tasks)
        before_prompts = set(self.mirror.prompts)
        self.mirror.load(snapshot)
        self.resync_count += 1
        self.state = ConnectionState.LIVE
        self._synced.set()
        changes = Changes(task_ids=before_tasks | set(self.mirror.tasks), resynced=True,
                          state=self.state)
        if was_synced:  # prompts that opened while we were not looking still ring the bell
            changes.opened = [q for i, q in sorted(self.mirror.prompts.items())
                              if i not in before_prompts]
        self._check_waiters_after_resync()
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pending: Changes | None = changes
        # Drain through a plain view of the same socket: an asyncio poll + recv per
        # message cost five times the message's own decode and apply (see
        # docs/BENCHMARKS.md); `sub.poll` below still waits without blocking the loop.
        raw = zmq.Socket.shadow(sub.underlying)
        while True:
            # Apply everything already queued, then report the batch once.
            count = 0
            while count < BATCH_LIMIT:
                try:
                    frames = raw.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                count += 1
                if pending is None:
                    pending = Changes(state=ConnectionState.LIVE)
                self._take(frames, pending)
            if count:
                heard = loop.time()
            if pending is not None:
                if self.state is not ConnectionState.LIVE:
                    self.state = ConnectionState.LIVE
                    self._synced.set()
                pending.state = self.state
                self._notify(pending)
                pending = None
            if count >= BATCH_LIMIT:
                await asyncio.sleep(0)
                continue
            silence = loop.time() - heard
            limit = STALE_AFTER if self.state is ConnectionState.LIVE else DISCONNECTED_AFTER
            wait = max(0.0, self.heartbeat * limit - silence)
            if await sub.poll(max(1, int(wait * 1000)), zmq.POLLIN):
                continue
            silence = loop.time() - heard
            if silence >= self.heartbeat * DISCONNECTED_AFTER:
                raise _Disconnected(f"nothing heard for {silence:.1f}s")
            if silence >= self.heartbeat * STALE_AFTER:
                self._set_state(ConnectionState.STALE)

    def _take(self, frames: list[bytes], changes: Changes) -> None:
        """Apply one PUB message to the mirror, recording what it changed.

        Raises:
            _Resync: a gap, a new epoch, a heartbeat ahead, or an unreadable message.
        """
        if len(frames) != 2:
            raise _Resync(f"unexpected message of {len(frames)} frames")
        topic, data = frames
        try:
            if topic == p.HEARTBEAT_TOPIC:
                beat = p.HEARTBEAT_DECODER.decode(data)
                if beat.epoch != self.mirror.epoch:
                    raise _Resync(f"the daemon restarted (epoch {beat.epoch})")
                if beat.seq > self.mirror.seq:
                    raise _Resync(f"heartbeat at seq {beat.seq}, mirror at {self.mirror.seq}")
                return
            if topic != p.EVENT_TOPIC:
                return  # a topic from a newer daemon: not ours to read
            event = p.EVENT_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise _Resync(f"unreadable message: {exc}") from None
        try:
            applied = self.mirror.apply(event)
        except OutOfSync as exc:
            raise _Resync(str(exc)) from None
        if applied:
            self._record(event, changes)

    def _record(self, event: Event, changes: Changes) -> None:
        body = event.body
        match body:
            case TaskCreated(task=task) | TaskChanged(task=task):
                changes.task_ids.add(task.id)
            case PromptOpened(task=task, prompt=prompt):
                changes.task_ids.add(task.id)
                changes.opened.append(prompt)
            case PromptClosed(task=task, prompt=prompt):
                changes.task_ids.add(task.id)
                changes.closed.append(prompt)
                waiter = self._prompt_waiters.pop(prompt.id, None)
                if waiter is not None and not waiter[1].done():
                    if _same_question(waiter[0], prompt):
                        waiter[1].set_result((task, prompt))
                    else:  # the id was given again after a restart: not our answer
                        waiter[1].set_exception(_question_lost(waiter[0]))
            case TasksEvicted(task_ids=ids):
                changes.task_ids.update(ids)
                changes.evicted.extend(ids)

    # ---------------------------------------------------------- prompt waits

    def _watch_prompt(self, prompt: Prompt) -> asyncio.Future[tuple[Task, Prompt]]:
        future: asyncio.Future[tuple[Task, Prompt]] = asyncio.get_running_loop().create_future()
        for closed in self.mirror.history.get(prompt.task_id, ()):
            if closed.id == prompt.id and _same_question(prompt, closed):
                # answered before we got the Ask reply
                future.set_result((self.mirror.tasks[prompt.task_id], closed))
                return future
        self._prompt_waiters[prompt.id] = (prompt, future)
        return future

    def _check_waiters_after_resync(self) -> None:
        """A prompt closed inside a gap shows only as missing from the snapshot: ask.

        One pending under the same id but asking something else means the daemon
        restarted without our question and gave its id again: that is not ours.
        """
        for prompt_id, (asked, future) in list(self._prompt_waiters.items()):
            if future.done():
                continue
            pending = self.mirror.prompts.get(prompt_id)
            if pending is None:
                asyncio.get_running_loop().create_task(self._check_prompt(asked, future))
            elif not _same_question(asked, pending):
                self._prompt_waiters.pop(prompt_id, None)
                future.set_exception(_question_lost(asked))

    async def _check_prompt(
        self, asked: Prompt, future: asyncio.Future[tuple[Task, Prompt]]
    ) -> None:
        try:
            task, prompts = await self.get(asked.task_id)
        except UnknownTask:
            task, prompts = None, []
        except TaskdeckError as exc:
            if not future.done():
                future.set_exception(exc)
            return
        for prompt in prompts:
            if prompt.id != asked.id:
                continue
            if not _same_question(asked, prompt):
                break
            if prompt.state is not PromptState.PENDING:
                self._prompt_waiters.pop(asked.id, None)
                if not future.done():
                    future.set_result((task, prompt))  # type: ignore[arg-type]
            return  # still pending: its answer comes as an event
        self._prompt_waiters.pop(asked.id, None)
        if not future.done():
            future.set_exception(_question_lost(asked))


def _same_question(asked: Prompt, seen: Prompt) -> bool:
    """True when `seen` is the very prompt that was asked, not another given its id later.

    Ids alone are not enough: a daemon that lost its last moments in a crash could
    give them again; the task, the question and the time it was asked tell them apart.
    """
    return (
        seen.id == asked.id
        and seen.task_id == asked.task_id
        and seen.question == asked.question
        and seen.created_at == asked.created_at
    )


def _question_lost(asked: Prompt) -> InvalidState:
    return InvalidState(
        f"the daemon no longer knows question {asked.question!r} (prompt {asked.id} of "
        f"task {asked.task_id}): it restarted without it; nothing was approved, ask again"
    )


class NoWordInTime(PromptTimedOut):
    """An `ask`'s own deadline passed before the daemon said its prompt timed out.

    The daemon may be stopped or gone; its own timer closes the prompt once it runs again.
    """


class ExternalTask:
    """A task this process does and reports on; its lease is renewed in the background.

    Use it as `async with await client.open_task(...) as task:` to finish it when the
    block ends (or fail it with the exception that ended the block).
    """

    def __init__(self, client: Client, task: Task, lease: float) -> None:
        self.client = client
        self.id = task.id
        self.task = task
        self.lease = lease
        self._ended = False
        self._beat: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._keep_alive(), name=f"taskdeck-lease-{task.id}"
        )

    def __repr__(self) -> str:
        return f"ExternalTask(id={self.id})"

    async def __aenter__(self) -> ExternalTask:
        return self

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if not self._ended:
            with contextlib.suppress(TaskdeckError):
                if exc is None:
                    await self.finish()
                elif isinstance(exc, Exception):
                    await self.fail(f"{type(exc).__name__}: {exc}"[: p.MAX_RESULT])
        await self.close()

    async def _keep_alive(self) -> None:
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.request(p.LeaseHeartbeat(task_id=self.id))
            except Unavailable as exc:
                log.warning("lease of task %d not renewed: %s", self.id, exc)
            except TaskdeckError as exc:  # ended or gone: nothing left to keep alive
                log.info("task %d: lease heartbeats stop: %s", self.id, exc)
                return

    async def close(self) -> None:
        """Stop renewing the lease (the task fails as lost unless it has ended)."""
        self.client._external.discard(self)
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None

    async def ask(
        self,
        question: str,
        *,
        choices: Iterable[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
        on_asked: Callable[[Prompt], None] | None = None,
    ) -> Prompt:
        """Ask a person and wait for the answer; returns the answered prompt.

        Subscribes to the daemon's events before asking, so the answer cannot be missed.
        `on_asked` is called with the prompt once the daemon has accepted it.

        `timeout` holds here too, not only in the daemon: a daemon that is stopped or
        gone cannot keep the caller waiting past `timeout` plus `LOCAL_GRACE` seconds.

        Raises:
            PromptTimedOut: nobody answered within `timeout` and there is no default.
            NoWordInTime: nor did the daemon say so within `LOCAL_GRACE` after it.
            InvalidState: the task was aborted (or ended) while waiting.
            NotPending: the prompt was cancelled.
        """
        if timeout is None:
            return await self._ask(question, choices, timeout, default, on_asked)
        deadline = asyncio.timeout(timeout + LOCAL_GRACE)
        try:
            async with deadline:
                return await self._ask(question, choices, timeout, default, on_asked)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise NoWordInTime(
                f"nobody answered within {timeout:g}s (and no word from the daemon)"
            ) from None

    async def _ask(
        self,
        question: str,
        choices: Iterable[str] | None,
        timeout: float | None,
        default: str | None,
        on_asked: Callable[[Prompt], None] | None,
    ) -> Prompt:
        client = self.client
        await client.start_mirror()
        await client.wait_synced(timeout=max(5.0, client.request_timeout * client.retries))
        body = p.Ask(
            task_id=self.id,
            question=question,
            choices=list(choices) if choices is not None else None,
            timeout=timeout,
            default=default,
        )
        prompt = (await client._call(body, p.PromptResult)).prompt
        try:
            if on_asked is not None:
                on_asked(prompt)
            task, closed = await client._watch_prompt(prompt)
        finally:
            client._prompt_waiters.pop(prompt.id, None)
        self.task = task
        if not _same_question(prompt, closed):  # never act on another question's answer
            raise _question_lost(prompt)
        if closed.state is PromptState.ANSWERED:
            return closed
        if closed.state is PromptState.TIMED_OUT:
            raise PromptTimedOut(f"nobody answered within {closed.timeout:g}s")
        if task.status.is_ended:
            self._ended = True
            why = "aborted" if task.end_reason is EndReason.ABORTED else task.status.value
            raise InvalidState(f"task {self.id} was {why}: {task.error or ''}".rstrip(": "))
        raise NotPending(f"prompt {closed.id} was cancelled")

    async def add_tokens(self, prompt: int = 0, completion: int = 0) -> None:
        """Count tokens this task spent."""
        await self.client.request(p.Tokens(task_id=self.id, prompt=prompt, completion=completion))

    async def progress(self, text: str | None) -> None:
        """Show a short line of what the task does now (None clears it)."""
        await self.client.request(p.Progress(task_id=self.id, text=text))

    async def heartbeat(self, lease: float | None = None) -> None:
        """Renew the lease now (optionally with a new length)."""
        if lease is not None:
            self.lease = lease
        await self.client.request(p.LeaseHeartbeat(task_id=self.id, lease=lease))

    async def finish(self, result: str = "") -> None:
        """End the task with its result."""
        self.task = (await self.client._call(p.Finish(task_id=self.id, result=result),
                                             p.TaskResult)).task
        self._ended = True
        await self.close()

    async def fail(self, error: str) -> None:
        """End the task as failed."""
        self.task = (await self.client._call(p.Fail(task_id=self.id, error=error),
                                             p.TaskResult)).task
        self._ended = True
        await self.close()


# -------------------------------------------------------------------- sync


class SyncClient(_Endpoint):
    """Blocking client for scripts and one-shot commands: a plain REQ socket, no event loop.

    Each command is one blocking Lazy Pirate exchange (a receive timeout of
    `request_timeout`; then the socket is closed with LINGER 0, reopened and the same
    request, same id, sent again, at most `retries` times), built from the same
    request and reply code as `Client`. Without an event loop in the way a round trip
    costs about what the transport does (docs/BENCHMARKS.md).

    External tasks need their lease renewed between calls, so `open_task` runs an
    async `Client` on an event loop in a background thread, started on first use.

    Takes the same arguments as `Client`.

    Raises:
        Unavailable: no daemon is running on the runtime dir (no connection file).
    """

    def __init__(self, runtime_dir: Path | None = None, **options: Any) -> None:
        super().__init__(runtime_dir, **options)
        self._args = (runtime_dir, options)
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._req: zmq.Socket[Any] | None = None
        self._mutex = threading.Lock()
        """One exchange at a time: a REQ socket must alternate send and receive."""
        self._closed = False
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        try:
            self._refresh_connection()
        except BaseException:
            self._ctx.destroy(linger=0)
            raise

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the command socket, and the background client and its thread if started."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            try:
                self._run(self._client.close())
            finally:
                self._stop_loop()
        with self._mutex:
            self._close_req()
            self._ctx.destroy(linger=0)

    # ------------------------------------------------------------- requests

    def _open_req(self) -> zmq.Socket[Any]:
        if self._req is None:
            sock = self._new_req(self._ctx)
            timeout_ms = max(1, int(self.request_timeout * 1000))
            sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
            sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
            self._req = sock
        return self._req

    def _close_req(self) -> None:
        if self._req is not None:
            self._req.close(linger=0)
            self._req = None
            self._req_endpoint = None

    def _exchange(self, request_id: str, data: bytes) -> p.Reply:
        """Lazy Pirate with blocking calls: a send and a receive, each bounded by the timeout."""
        for attempt in range(self.retries):
            self._before_attempt(attempt)
            sock = self._open_req()
            done = False
            try:
                sock.send(data)
                while True:
                    reply = _accept(sock.recv(), request_id)
                    if reply is not None:
                        done = True
                        return reply
            except zmq.Again:  # nothing within the timeout
                continue
            finally:
                if not done:  # timed out, failed or interrupted: the socket is unusable
                    self._close_req()
        raise self._gave_up()

    def _reply(self, body: p.Command) -> p.Reply:
        if self._closed:
            raise Unavailable("the client is closed")
        request_id, data = self._prepare(body)
        with self._mutex:
            return self._exchange(request_id, data)

    def request(self, body: p.Command) -> p.ResultBody | None:
        """Send one command and return its result; see `Client.request`."""
        reply = self._reply(body)
        if not reply.ok:
            _raise_error(reply.error)
        return reply.result

    def _do(self, call: _Call[T]) -> T:
        return call.take(_result(self._reply(call.body), call.kind))

    # ------------------------------------------------------------- commands

    def hello(self) -> dict[str, Any]:
        """See `Client.hello`."""
        return self._do(_hello())

    def snapshot(self) -> Snapshot:
        """See `Client.snapshot`."""
        return self._do(_snapshot())

    def list_tasks(
        self,
        *,
        agent: str | None = None,
        status: TaskStatus | str | None = None,
        parent_id: int | None = None,
        limit: int = 100,
        roots_only: bool = False,
        before: int | None = None,
    ) -> list[Task]:
        """See `Client.list_tasks`."""
        return self._do(_list_tasks(agent, status, parent_id, limit, roots_only, before))

    def get(self, task_id: int) -> tuple[Task, list[Prompt]]:
        """See `Client.get`."""
        return self._do(_get(task_id))

    def history(self, *, task_id: int | None = None, limit: int = 200) -> list[p.Decision]:
        """See `Client.history`."""
        return self._do(_history(task_id, limit))

    def submit(
        self,
        agent: str,
        description: str,
        *,
        parent_id: int | None = None,
        timeout: float | None = None,
    ) -> Task:
        """See `Client.submit`."""
        return self._do(_submit(agent, description, parent_id, timeout))

    def answer(
        self, prompt_id: int, text: str, *, reason: str | None = None, by: str | None = None
    ) -> Prompt:
        """See `Client.answer`."""
        return self._do(_answer(prompt_id, text, reason, by))

    def answer_task(
        self,
        task_id: int,
        text: str,
        *,
        reason: str | None = None,
        prompt_id: int | None = None,
        by: str | None = None,
    ) -> Prompt:
        """See `Client.answer_task`."""
        return self._do(_answer_task(task_id, text, reason, prompt_id, by))

    def abort(self, task_id: int, *, only: bool = False) -> list[int]:
        """See `Client.abort`."""
        return self._do(_abort(task_id, only))

    # ------------------------------------------------------- external tasks

    @property
    def client(self) -> Client:
        """The async `Client` behind `open_task`, on its own loop in a background thread."""
        if self._client is None:
            if self._closed:
                raise Unavailable("the client is closed")
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="taskdeck-client", daemon=True
            )
            self._thread.start()
            runtime_dir, options = self._args

            async def make() -> Client:
                client = Client(runtime_dir, **options)
                await client.connect()
                return client

            try:
                self._client = self._run(make())
            except BaseException:
                self._stop_loop()
                raise
        return self._client

    def open_task(self, description: str, **options: Any) -> SyncExternalTask:
        """See `Client.open_task`."""
        client = self.client
        return SyncExternalTask(self, self._run(client.open_task(description, **options)))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._client = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class SyncExternalTask:
    """Blocking face of `ExternalTask`."""

    def __init__(self, owner: SyncClient, task: ExternalTask) -> None:
        self._owner = owner
        self.task = task
        self.id = task.id

    def __enter__(self) -> SyncExternalTask:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._owner._run(self.task.__aexit__(kind, exc, tb))

    def ask(self, question: str, **options: Any) -> Prompt:
        """See `ExternalTask.ask`."""
        return self._owner._run(self.task.ask(question, **options))

    def add_tokens(self, prompt: int = 0, completion: int = 0) -> None:
        """See `ExternalTask.add_tokens`."""
        self._owner._run(self.task.add_tokens(prompt, completion))

    def progress(self, text: str | None) -> None:
        """See `ExternalTask.progress`."""
        self._owner._run(self.task.progress(text))

    def finish(self, result: str = "") -> None:
        """See `ExternalTask.finish`."""
        self._owner._run(self.task.finish(result))

    def fail(self, error: str) -> None:
        """See `ExternalTask.fail`."""
        self._owner._run(self.task.fail(error))

    def close(self) -> None:
        """See `ExternalTask.close`."""
        self._owner._run(self.task.close())


__all__ = [
    "Changes",
    "Client",
    "ConnectionState",
    "ExternalTask",
    "NoWordInTime",
    "SyncClient",
    "SyncExternalTask",
]
