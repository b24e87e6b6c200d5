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

    def now(self) -> float:
        return self._now()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, fn)


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
