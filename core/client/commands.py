"""The async command path: one plain REQ socket woken through the event loop's reader,
Lazy Pirate retries, and each command as a coroutine."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import zmq
import zmq.asyncio

from core import protocol as p
from core.client import calls
from core.client.calls import R, T, _accept, _Call, _raise_error, _result
from core.client.endpoint import _Endpoint
from core.errors import Unavailable
from core.looplock import may_block
from core.model import Action, Prompt, Snapshot, Task, TaskStatus
from core.policy import Rule, Ruling

_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
"""As plain ints: `&` on the enum costs about what reading ZMQ_EVENTS does."""

BLOCKING_WAIT_MS = 2
"""Longest the client blocks its loop's thread in libzmq for a reply, when nothing else
on the loop is ready to run: a reply usually comes within this, and waiting for it in
libzmq costs none of the loop's wake-up, reader callback and future (docs/BENCHMARKS.md).
A slower reply is then awaited through the loop as usual."""


def _settle_none(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncCommands(_Endpoint):
    """The commands half of `Client`: its socket, its requests and each command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx: zmq.asyncio.Context | None = None
        self._req: zmq.Socket[Any] | None = None
        """The command socket: plain, woken through the loop's reader on its FD."""
        self._req_fd: int | None = None
        self._req_loop: asyncio.AbstractEventLoop | None = None
        self._req_ready: asyncio.Future[None] | None = None
        """Set by the reader when the command socket may have a reply."""
        self._lock = asyncio.Lock()
        self._closed = False
        self._busy_loop_waits = 0
        """Instrumentation for tests and benchmarks: requests sent when `may_block` said
        no (something else ready on the loop, or a daemon serving from it), whose reply was
        therefore awaited through the loop without the short blocking wait first
        (`BLOCKING_WAIT_MS`). A blocking wait that timed out is not counted."""

    async def close(self) -> None:
        """Close the command socket and the context (LINGER 0)."""
        self._closed = True
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
        sock.setsockopt(zmq.RCVTIMEO, BLOCKING_WAIT_MS)  # the blocking wait of `_exchange`
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
        # Read the state first, whoever waits: it re-arms the edge-triggered FD. Left
        # readable, the FD would queue this callback again on the loop's next turn, and
        # the next request would find the loop busy with it and never take the blocking
        # wait of `_exchange` (every request after one slow reply went through the loop).
        # The waiter reads the state again itself, so nothing is lost.
        if self._req is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._req.getsockopt(zmq.EVENTS)
        ready = self._req_ready
        if ready is not None and not ready.done():
            ready.set_result(None)

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
                    sock.send(data, _NOBLOCK)
                except zmq.Again:  # no pipe to the daemon yet
                    if not await self._req_event(sock, _POLLOUT, timeout):
                        continue
                    sock.send(data, _NOBLOCK)
                if may_block(asyncio.get_running_loop()):
                    with contextlib.suppress(zmq.Again):  # RCVTIMEO: BLOCKING_WAIT_MS
                        reply = _accept(sock.recv(), request_id)  # the GIL is released
                        if reply is not None:
                            done = True
                            return reply
                else:
                    self._busy_loop_waits += 1
                while await self._req_event(sock, _POLLIN, timeout):
                    try:
                        raw = sock.recv(_NOBLOCK)
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
        return await self._do(calls.hello())

    async def snapshot(self) -> Snapshot:
        """Every task and pending prompt, and the seq they reflect."""
        return await self._do(calls.snapshot())

    async def list_tasks(
        self,
        *,
        agent: str | None = None,
        status: TaskStatus | str | None = None,
        parent_id: int | None = None,
        limit: int = 100,
        roots_only: bool = False,
        before: int | None = None,
        key: str | None = None,
    ) -> list[Task]:
        """Tasks newest first, filtered, at most `limit`."""
        return await self._do(
            calls.list_tasks(agent, status, parent_id, limit, roots_only, before, key)
        )

    async def get(self, task_id: int) -> tuple[Task, list[Prompt]]:
        """A task and every prompt it asked, oldest first."""
        return await self._do(calls.get(task_id))

    async def history(self, *, task_id: int | None = None, limit: int = 200) -> list[p.Decision]:
        """Who answered or aborted what, oldest first: the last `limit` decisions.

        With `task_id`, only the decisions that touched that task, including the abort
        of an ancestor that ended it.

        Raises:
            InvalidState: the daemon keeps no journal.
        """
        return await self._do(calls.history(task_id, limit))

    async def submit(
        self,
        agent: str,
        description: str,
        *,
        parent_id: int | None = None,
        timeout: float | None = None,
    ) -> Task:
        """Start a task for one of the daemon's agents."""
        return await self._do(calls.submit(agent, description, parent_id, timeout))

    async def answer(
        self, prompt_id: int, text: str, *, reason: str | None = None, by: str | None = None
    ) -> Prompt:
        """Answer a pending prompt; returns it answered.

        Raises:
            AlreadyAnswered: somebody answered first.
            NotPending: it was cancelled or timed out.
            UnknownPrompt: no such prompt.
        """
        return await self._do(calls.answer(prompt_id, text, reason, by))

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
        return await self._do(calls.answer_task(task_id, text, reason, prompt_id, by))

    async def abort(self, task_id: int, *, only: bool = False) -> list[int]:
        """End the task and (unless `only`) its subtree; returns the ids it ended."""
        return await self._do(calls.abort(task_id, only))

    async def add_rule(
        self,
        effect: str,
        pattern: str,
        *,
        agent: str | None = None,
        session: str | None = None,
        task_id: int | None = None,
        expires: float | None = None,
        everything: bool = False,
        by: str | None = None,
    ) -> Rule:
        """Add an approval rule (see `Registry.add_rule`); returns it with its id.

        Raises:
            BadRequest: a malformed pattern, or one matching everything without `everything`.
        """
        return await self._do(calls.add_rule(
            effect, pattern, agent=agent, session=session, task_id=task_id, expires=expires,
            everything=everything, by=by,
        ))

    async def remove_rule(self, rule_id: int, *, by: str | None = None) -> Rule:
        """Remove an approval rule; returns it as removed.

        Raises:
            UnknownRule: no rule of that id.
        """
        return await self._do(calls.remove_rule(rule_id, by))

    async def list_rules(self) -> tuple[list[Rule], float]:
        """Every rule by id, and the daemon's time now (past a rule's `expires_at`: expired)."""
        return await self._do(calls.list_rules())

    async def test_rules(self, action: Action, *, task_id: int | None = None) -> Ruling:
        """Which rules would decide `action` (asked by `task_id`), and why; changes nothing."""
        return await self._do(calls.test_rules(action, task_id))
