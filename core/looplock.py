"""The one lock that guards the registry while the daemon serves commands from a thread.

Why a thread at all: served from the event loop, every request paid a selector wake-up
and a callback on top of libzmq's own (docs/BENCHMARKS.md); a thread blocking in
libzmq's receive wakes straight into the request. But the registry, the journal, the
PUB socket and the loop's own queues are not thread-safe, so this is the one rule:

    they are touched only by the thread that holds `LoopLock.lock`.

The loop thread holds it at all times except while it waits in its selector (which is
when it touches nothing); the command thread takes it for each batch of requests.
Whatever the batch left for the loop (a callback made ready, a timer due sooner than the
loop planned to wake) is a wake owed: `borrow` writes to the loop's self-pipe on the way
out, or with `defer_wake` leaves that to `wake()`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_LOCKED: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
"""Loops a `LoopLock` is installed on: their own thread must never block waiting for the
daemon, which needs the lock that thread holds (see `may_block`)."""


def may_block(loop: asyncio.AbstractEventLoop) -> bool:
    """True when code on `loop` may briefly block its thread waiting for the daemon's reply:
    nothing else is ready to run on it, and no daemon serves from it (that would need
    the lock the loop's thread holds)."""
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready and loop not in _LOCKED


class LoopLock:
    """Makes a running selector event loop hold `lock` except while it waits for I/O.

    Install it from the loop's own thread (`install`); from then on the loop thread
    owns the lock whenever it runs anything, and another thread that takes it may
    use the loop's objects as if it were the loop thread (`borrow`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.lock = threading.Lock()
        self._loop: Any = loop
        self._selector: Any = None
        self._select: Callable[..., Any] | None = None
        self.wake_owed = False
        """A `borrow(defer_wake=True)` left the loop something to do; `wake()` pays it."""

    def install(self) -> None:
        """Wrap the loop's selector; the calling (loop) thread now holds the lock.

        Raises:
            TypeError: the loop is not a selector event loop.
        """
        selector = getattr(self._loop, "_selector", None)
        if selector is None or not hasattr(self._loop, "_write_to_self"):
            raise TypeError("the daemon needs a selector event loop to serve commands")
        lock = self.lock
        select = selector.select

        def unlocked_select(timeout: float | None = None) -> Any:
            lock.release()
            try:
                return select(timeout)
            finally:
                lock.acquire()

        lock.acquire()
        self._selector, self._select = selector, select
        selector.select = unlocked_select
        _LOCKED.add(self._loop)

    def uninstall(self) -> None:
        """Give the loop its own selector back and release the lock (from the loop thread)."""
        if self._selector is None:
            return
        del self._selector.select  # the instance attribute: the class's method shows again
        _LOCKED.discard(self._loop)
        self._selector = self._select = None
        self.lock.release()

    @contextmanager
    def borrow(self, *, defer_wake: bool = False) -> Iterator[None]:
        """From another thread: hold the lock and act as the loop's thread, then wake it.

        Inside, `asyncio.get_running_loop()` is the daemon's loop, so timers and
        callbacks the registry schedules go on it; on the way out the loop is woken
        if that left it something to do sooner than it planned (a timer armed and
        cancelled inside is nothing to do: waking for one cost the loop thread a turn
        and the lock a hand-over). With `defer_wake` the wake is only owed
        (`wake_owed`): the caller pays it with `wake()` when it chooses, so that several
        borrows can share one.
        """
        loop = self._loop
        with self.lock:
            ready = len(loop._ready)
            timers = loop._scheduled
            # The loop sleeps until its heap's head at most (cancelled or not: it planned
            # its wake by it); a live timer due before that is a wake owed.
            planned = timers[0].when() if timers else None
            asyncio.events._set_running_loop(loop)
            try:
                yield
            finally:
                asyncio.events._set_running_loop(None)
                if len(loop._ready) > ready or _live_before(timers, planned):
                    if defer_wake:
                        self.wake_owed = True
                    else:
                        loop._write_to_self()

    def wake(self) -> None:
        """Wake the loop for what deferred borrows left it, if they left it anything."""
        if self.wake_owed:
            self.wake_owed = False
            self._loop._write_to_self()


def _live_before(timers: list[asyncio.TimerHandle], deadline: float | None) -> bool:
    """True when the heap `timers` holds a timer not cancelled that is due before `deadline`
    (None: any). A cancelled one at the head may hide a live one behind it, so the heap
    is searched, but only below timers due before the deadline: those are the ones the
    borrow added, few."""
    stack = [0] if timers else []
    while stack:
        at = stack.pop()
        timer = timers[at]
        if deadline is not None and timer.when() >= deadline:
            continue  # the heap's order: nothing below is sooner
        if not timer.cancelled():
            return True
        stack.extend(child for child in (2 * at + 1, 2 * at + 2) if child < len(timers))
    return False
