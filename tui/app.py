"""Launching the dashboard: the app on a client of its own, a borrowed one, or a test's."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import TaskdeckError
from tui.deck import DeckApp
from tui.live import Connect

if TYPE_CHECKING:
    from core.client import Client

__all__ = ["Connect", "DeckApp", "make_app", "run_dashboard"]


def make_app(
    runtime_dir: Path | None = None,
    *,
    client: Client | None = None,
    connect: Connect | None = None,
    clock: Callable[[], float] = time.time,
    theme: str | None = None,
    blink: bool = True,
) -> DeckApp:
    """Build the dashboard.

    Args:
        runtime_dir: Where the daemon's connection file is (default: the usual runtime dir).
        client: An entered client to use (its mirror is started by the app; the caller closes it).
        connect: Or a factory of an async context manager yielding the client (tests use it to
            start an in-process daemon inside the app's own event loop).
        clock: Source of "now" for elapsed times and the event rate.
        theme: A Textual theme name.
        blink: Blink the cursor of text boxes (off for deterministic screenshots).
    """
    if connect is None:
        if client is not None:
            connect = _borrow(client)
        else:
            connect = _own(runtime_dir)
    return DeckApp(connect, clock=clock, theme=theme, blink=blink)


def _borrow(client: Client) -> Connect:
    @contextlib.asynccontextmanager
    async def borrowed() -> AsyncIterator[Client]:
        yield client

    return borrowed


def _own(runtime_dir: Path | None) -> Connect:
    @contextlib.asynccontextmanager
    async def owned() -> AsyncIterator[Client]:
        from core.client import Client

        async with Client(runtime_dir, client_name="tui") as client:
            yield client

    return owned


def run_dashboard(runtime_dir: Path | None, *, theme: str | None = None) -> int:
    """Run the dashboard on the daemon of `runtime_dir` until the user quits.

    Returns:
        The exit code: 0 after a normal quit, 2 when the daemon cannot be reached
        (after printing one line that says why).
    """
    from core.runtime import default_runtime_dir, read_connection

    where = runtime_dir if runtime_dir is not None else default_runtime_dir()
    try:
        read_connection(where)
    except TaskdeckError as exc:
        print(f"taskdeck: {exc}", file=sys.stderr)
        return 2
    app = make_app(where, theme=theme)
    code = app.run()
    if app.failure is not None:
        print(f"taskdeck: cannot reach the daemon: {app.failure}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else (app.return_code or 0)
