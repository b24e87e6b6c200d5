"""Fixtures for the wire tests: a real daemon on real sockets in a private temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from core.assembly import Assembly
from core.client import Client
from core.context import AgentContext
from core.registry import Registry
from core.runtime import ConnectionInfo
from core.server import Daemon

HEARTBEAT = 0.05
"""Fast heartbeats so stale/disconnect/resync tests take a fraction of a second."""


async def echo(ctx: AgentContext) -> str:
    """Asks once and returns the answer."""
    return await ctx.ask(f"Run `{ctx.description}`?")


async def forever(ctx: AgentContext) -> str:
    """Runs until it is cancelled."""
    await asyncio.Event().wait()
    return "never"


async def tree(ctx: AgentContext) -> str:
    """Spawns two children that run forever and waits for them."""
    kids = [ctx.spawn("forever", f"{ctx.description} / child {n}") for n in (1, 2)]
    await ctx.wait(kids)
    return "done"


def make_registry(**options: object) -> Registry:
    """A registry with the test agents."""
    return Registry(agents={"echo": echo, "forever": forever, "tree": tree}, **options)  # type: ignore[arg-type]


@pytest.fixture
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh runtime dir with a path short enough for unix sockets."""
    return tmp_path_factory.mktemp("rt") / "run"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where CURVE keys and the allow-list go."""
    return tmp_path / "state"


@pytest.fixture
def registry() -> Registry:
    """The registry the daemon serves."""
    return make_registry()


@pytest.fixture
async def daemon(registry: Registry, runtime_dir: Path) -> AsyncIterator[Daemon]:
    """A running daemon on ipc sockets in `runtime_dir`."""
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT) as served:
        yield served
    await registry.close()


@pytest.fixture
async def connect(runtime_dir: Path) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Factory of connected clients (closed at the end of the test)."""
    clients: list[Client] = []

    async def make(**options: object) -> Client:
        options.setdefault("request_timeout", 1.0)
        options.setdefault("retries", 2)
        if "connection" not in options:
            options.setdefault("runtime_dir", runtime_dir)
        client = Client(**options)  # type: ignore[arg-type]
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(daemon: Daemon, connect: Callable[..., Awaitable[Client]]) -> Client:
    """A client of `daemon`."""
    return await connect(client_name="test")


class ThreadedDaemon:
    """A daemon serving in its own thread and event loop, for blocking (sync) tests.

    `options` go to `Assembly` (`journal=PATH` keeps a journal there) and the `Daemon`.
    """

    def __init__(self, runtime_dir: Path, **options: object) -> None:
        self.runtime_dir = runtime_dir
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.registry: Registry | None = None
        self.daemon: Daemon | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with Assembly(lambda first_id: make_registry(first_id=first_id),
                                runtime_dir=self.runtime_dir, **self.options) as deck:
                self.registry, self.daemon = deck.registry, deck.daemon
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def call(self, fn: Callable[[], object]) -> object:
        """Run `fn` in the daemon's loop and return its result."""
        async def run() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=5)

    @property
    def connection(self) -> ConnectionInfo:
        assert self.daemon is not None
        return self.daemon.connection

    def __enter__(self) -> ThreadedDaemon:
        self.thread.start()
        assert self._ready.wait(10), "daemon did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        with contextlib.suppress(RuntimeError):
            self.loop.close()


@pytest.fixture
def threaded_daemon(runtime_dir: Path) -> Iterator[ThreadedDaemon]:
    """A daemon in a background thread (for hypothesis and other sync tests)."""
    with ThreadedDaemon(runtime_dir, heartbeat=HEARTBEAT) as served:
        yield served
