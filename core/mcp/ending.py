"""The host's signals to end `taskdeck mcp` (SIGINT, SIGTERM, SIGHUP), caught from its
first line until the process is gone, and the way it leaves.

Claude Code ends an MCP server with SIGINT, SIGTERM 100 ms later, then SIGKILL. A signal
that finds its default disposition kills the process (status -15) or raises
KeyboardInterrupt wherever the code is. Two such windows were real: importing the SDK
(up to a second) before the server installs anything, and the end, after the session is
closed, while the interpreter tears down its modules (0.1 s of CPU, more under load,
just when the SIGTERM comes; the interpreter resets Python handlers to the default before
that teardown). So one handler is installed before the SDK is imported and never taken
away: before the server runs it notes the signal (the server then ends at once), while
the server runs it has the event loop stop it, and once the session is closed it has
nothing left to do. The process then leaves with `os._exit`, skipping the teardown, and
with it the window, and any worker thread still blocked on a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What a host sends to end its server."""


class HostSignals:
    """The process's one handler of `ENDING`; signals are process-wide, so is this."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        """The first signal that came, if any."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: Callable[[], None] | None = None

    def catch(self) -> None:
        """From now on a host's signal is noted, never fatal (again: no change)."""
        for sig in ENDING:
            signal.signal(sig, self._caught)

    def _caught(self, signum: int, frame: FrameType | None) -> None:
        """Runs in the main thread between two bytecodes, maybe inside the loop's own
        code: the stop is handed to the loop rather than run here."""
        if self.received is None:
            self.received = signal.Signals(signum)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop)

    @contextlib.contextmanager
    def stopping(self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
        """While in this block, every signal calls `stop` on `loop`; a signal that came
        before calls it at once.

        The handler itself only runs when the main thread runs Python: a signal the
        kernel hands to a worker thread must still wake a loop asleep in its selector,
        so the signal's number is written to a socket the loop watches.
        """
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        previous = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        loop.add_reader(wake_read.fileno(), _drain, wake_read)
        self._loop, self._stop = loop, stop
        if self.received is not None:  # set before `_stop` was: no signal goes unseen
            loop.call_soon(stop)
        try:
            yield
        finally:
            self._loop = self._stop = None
            loop.remove_reader(wake_read.fileno())
            signal.set_wakeup_fd(previous)
            wake_read.close()
            wake_write.close()


def _drain(wake: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while wake.recv(256):
            pass


SIGNALS = HostSignals()


def leave(status: int) -> NoReturn:
    """Exit with `status` now that the session is closed: what is written is flushed,
    the interpreter's teardown is skipped (see the module's docstring)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a host gone leaves a broken pipe
            stream.flush()
    os._exit(status)
