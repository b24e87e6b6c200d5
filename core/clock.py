"""Time as the registry sees it: one object for "now" and for "call me in N seconds".

Every timeout, lease and timestamp of the registry asks this object, so a test can
replace it with `ManualClock` and move time by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A callback waiting to run; `cancel` makes sure it never does."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Wall-clock timestamps and delayed callbacks, from one source of time."""

    def now(self) -> float:
        """Seconds since the epoch, as written into tasks, prompts and events."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Call `fn()` once, `delay` seconds from now, unless cancelled first."""
        ...


class LoopScheduler:
    """The daemon's time: timestamps from `now` (time.time), timers on the running loop."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._queue: _TimerQueue | None = None
        """The timers of the loop that armed the last one (a loop keeps its own)."""

    def now(self) -> float:
        return self._now()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        queue = self._queue
        if queue is None or queue.loop is not loop:
            queue = self._queue = _TimerQueue(loop)
        return queue.add(delay, fn)


class _LoopTimer:
    __slots__ = ("fn", "queue")

    def __init__(self, fn: Callable[[], None], queue: _TimerQueue) -> None:
        self.fn: Callable[[], None] | None = fn
        """None once cancelled or fired."""
        self.queue: _TimerQueue | None = queue
        """None once out of the queue's heap (due, or fired)."""

    def cancel(self) -> None:
        if self.fn is not None:
            self.fn = None
            if self.queue is not None:
                self.queue.cancelled()


class _TimerQueue:
    """The registry's timers on one loop: a heap of deadlines under one loop timer, armed
    for the earliest.

    Every in-process task arms a timeout as it starts and every heartbeat re-arms a
    lease: as loop timers each cost 2.2 us to arm (a `TimerHandle`, its context, a
    heap of handles compared in Python), here 1.3 us (docs/BENCHMARKS.md,
    "the daemon's CPU per submit").
    Callbacks run in deadline order, those due together in the order they were armed;
    one that raises is reported to the loop's exception handler, like a loop callback.
    """

    COMPACT_AT = 256
    """Cancelled timers kept in the heap before it may be rebuilt without them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: list[tuple[float, int, _LoopTimer]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0
        self._cancelled = 0

    def add(self, delay: float, fn: Callable[[], None]) -> _LoopTimer:
        when = self.loop.time() + delay
        timer = _LoopTimer(fn, self)
        heapq.heappush(self._due, (when, next(self._order), timer))
        if self._handle is None or when < self._armed_for:
            self._arm(when)
        return timer

    def cancelled(self) -> None:
        """A timer still in the heap was cancelled: rebuild the heap once most of it is."""
        self._cancelled += 1
        if self._cancelled > self.COMPACT_AT and self._cancelled * 2 > len(self._due):
            self._due = [entry for entry in self._due if entry[2].fn is not None]
            heapq.heapify(self._due)
            self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._fire)
        self._armed_for = when

    def _fire(self) -> None:
        """Run every timer due (armed before this turn; later ones wait for the next)."""
        self._handle = None
        due = self._due
        end = self.loop.time() + self.loop._clock_resolution  # type: ignore[attr-defined]
        ready: list[_LoopTimer] = []
        while due and due[0][0] <= end:
            timer = heapq.heappop(due)[2]
            if timer.fn is None:
                self._cancelled -= 1
            else:
                timer.queue = None
                ready.append(timer)
        for timer in ready:
            fn = timer.fn
            if fn is None:  # cancelled by a callback before it, as a loop skips it
                continue
            timer.fn = None
            try:
                fn()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # noqa: BLE001 -- as the loop treats a callback's
                self.loop.call_exception_handler(
                    {"message": f"exception in timer callback {fn!r}", "exception": exc})
        while due and due[0][2].fn is None:  # cancelled at the head: never armed for
            heapq.heappop(due)
            self._cancelled -= 1
        if due and (self._handle is None or due[0][0] < self._armed_for):
            self._arm(due[0][0])


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time that moves only when told: `advance` fires what falls due, in order.

    Each callback runs with `now()` at its own due time, and a callback scheduled
    by another one fires in the same `advance` if it falls due within it.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._due: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        """Callable like `time.time`, for code that only reads the time."""
        return self._now

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = _ManualTimer()
        heapq.heappush(self._due, (self._now + max(0.0, delay), next(self._order), timer, fn))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing every callback due by then."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        until = self._now + seconds
        while self._due and self._due[0][0] <= until:
            when, _, timer, fn = heapq.heappop(self._due)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            fn()
        self._now = until

    @property
    def pending(self) -> int:
        """Callbacks scheduled and not cancelled (fired ones are gone)."""
        return sum(not timer.cancelled for _, _, timer, _ in self._due)


def as_scheduler(clock: Scheduler | Callable[[], float] | None) -> Scheduler:
    """A `Scheduler` from a scheduler, a bare timestamp function (timers on the loop), or None."""
    if clock is None:
        return LoopScheduler()
    if hasattr(clock, "call_later"):
        return clock  # type: ignore[return-value]
    return LoopScheduler(clock)  # type: ignore[arg-type]
