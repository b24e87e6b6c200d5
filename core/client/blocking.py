"""The blocking `SyncClient` for scripts and one-shot commands, and the blocking face of
its external tasks."""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from core import protocol as p
from core.client import calls
from core.client.calls import T, _accept, _Call, _raise_error, _result
from core.client.endpoint import ClientOptions, _Endpoint
from core.errors import Unavailable

if TYPE_CHECKING:  # imported when first used: plain commands need no event loop
    import asyncio

    from core.client.aio import Client
    from core.client.external import ExternalTask
from core.model import Action, Prompt, Question, Snapshot, Task, TaskStatus
from core.policy import Rule, Ruling


class SyncClient(_Endpoint):
    """Blocking client for scripts and one-shot commands: a plain REQ socket, no event loop.

    Each command is one blocking Lazy Pirate exchange (a receive timeout of
    `request_timeout`; then the socket is closed with LINGER 0, reopened and the same
    request, same id, sent again, at most `retries` times), built from the same
    request and reply code as `Client`. Without an event loop in the way a round trip
    costs about what the transport does (docs/BENCHMARKS.md).

    External tasks need their lease renewed between calls, so `open_task` runs an
    async `Client` on an event loop in a background thread, started on first use.

    Takes the same arguments as `Client`: `runtime_dir`, `options` and any field of
    `ClientOptions` as a keyword.

    Raises:
        Unavailable: no daemon is running on the runtime dir (no connection file).
    """

    def __init__(
        self,
        runtime_dir: Path | str | None = None,
        *,
        options: ClientOptions | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(runtime_dir, options=options, **overrides)
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
        return self._do(calls.hello())

    def snapshot(self) -> Snapshot:
        """See `Client.snapshot`."""
        return self._do(calls.snapshot())

    def list_tasks(
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
        """See `Client.list_tasks`."""
        return self._do(
            calls.list_tasks(agent, status, parent_id, limit, roots_only, before, key)
        )

    def get(self, task_id: int) -> tuple[Task, list[Prompt]]:
        """See `Client.get`."""
        return self._do(calls.get(task_id))

    def history(self, *, task_id: int | None = None, limit: int = 200) -> list[p.Decision]:
        """See `Client.history`."""
        return self._do(calls.history(task_id, limit))

    def submit(
        self,
        agent: str,
        description: str,
        *,
        parent_id: int | None = None,
        timeout: float | None = None,
    ) -> Task:
        """See `Client.submit`."""
        return self._do(calls.submit(agent, description, parent_id, timeout))

    def answer(
        self, prompt_id: int, text: str, *, reason: str | None = None, by: str | None = None
    ) -> Prompt:
        """See `Client.answer`."""
        return self._do(calls.answer(prompt_id, text, reason, by))

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
        return self._do(calls.answer_task(task_id, text, reason, prompt_id, by))

    def abort(self, task_id: int, *, only: bool = False) -> list[int]:
        """See `Client.abort`."""
        return self._do(calls.abort(task_id, only))

    def add_rule(self, effect: str, pattern: str, **scope: Any) -> Rule:
        """See `Client.add_rule` (the same keywords)."""
        return self._do(calls.add_rule(effect, pattern, **scope))

    def remove_rule(self, rule_id: int, *, by: str | None = None) -> Rule:
        """See `Client.remove_rule`."""
        return self._do(calls.remove_rule(rule_id, by))

    def list_rules(self) -> tuple[list[Rule], float]:
        """See `Client.list_rules`."""
        return self._do(calls.list_rules())

    def test_rules(self, action: Action, *, task_id: int | None = None) -> Ruling:
        """See `Client.test_rules`."""
        return self._do(calls.test_rules(action, task_id))

    # ------------------------------------------------------- external tasks

    @property
    def client(self) -> Client:
        """The async `Client` behind `open_task`, on its own loop in a background thread."""
        if self._client is None:
            if self._closed:
                raise Unavailable("the client is closed")
            import asyncio

            from core.client.aio import Client

            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="taskdeck-client", daemon=True
            )
            self._thread.start()
            async def make() -> Client:
                client = Client(options=self.options)
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
        import asyncio
        import concurrent.futures

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

    def ask(self, question: str | Question, **options: Any) -> Prompt:
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

