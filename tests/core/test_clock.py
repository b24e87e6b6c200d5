"""The manual clock tests move time with: due callbacks fire in order, each at its own time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.clock import LoopScheduler, ManualClock, as_scheduler


def test_advance_fires_what_falls_due_in_order_at_its_own_time() -> None:
    clock = ManualClock(start=100.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(3, lambda: fired.append(("c", clock.now())))
    clock.call_later(1, lambda: fired.append(("a", clock.now())))
    clock.call_later(2, lambda: fired.append(("b", clock.now())))
    clock.advance(2.5)
    assert fired == [("a", 101.0), ("b", 102.0)]
    assert clock.now() == 102.5
    clock.advance(0.5)
    assert fired[-1] == ("c", 103.0)
    assert clock.pending == 0


def test_a_cancelled_callback_never_fires() -> None:
    clock = ManualClock()
    fired: list[str] = []
    timer = clock.call_later(1, lambda: fired.append("late"))
    timer.cancel()
    clock.advance(10)
    assert fired == [] and clock.pending == 0


def test_a_callback_scheduled_by_another_fires_in_the_same_advance() -> None:
    clock = ManualClock(start=0.0)
    fired: list[float] = []

    def first() -> None:
        fired.append(clock.now())
        clock.call_later(1, lambda: fired.append(clock.now()))

    clock.call_later(1, first)
    clock.advance(5)
    assert fired == [1.0, 2.0]


def test_time_never_goes_back() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)


def test_a_bare_timestamp_function_still_dates_events() -> None:
    scheduler = as_scheduler(lambda: 42.0)
    assert isinstance(scheduler, LoopScheduler) and scheduler.now() == 42.0
    clock = ManualClock()
    assert as_scheduler(clock) is clock and clock() == clock.now()


# ------------------------------------------------ LoopScheduler: timers on a real loop


async def _fired_after(scheduler: LoopScheduler, delay: float) -> None:
    """Wait on the real loop until a timer armed now for `delay` has fired."""
    done = asyncio.get_running_loop().create_future()
    scheduler.call_later(delay, lambda: done.set_result(None))
    await asyncio.wait_for(done, 5)


async def test_loop_timers_fire_by_deadline_then_in_the_order_armed() -> None:
    scheduler = LoopScheduler()
    fired: list[str] = []
    scheduler.call_later(0.03, lambda: fired.append("late"))
    scheduler.call_later(0.01, lambda: fired.append("soon 1"))  # sooner than the one armed
    scheduler.call_later(0.01, lambda: fired.append("soon 2"))
    scheduler.call_later(0.02, lambda: fired.append("cancelled")).cancel()
    await _fired_after(scheduler, 0.015)
    assert fired == ["soon 1", "soon 2"]
    await _fired_after(scheduler, 0.03)
    assert fired == ["soon 1", "soon 2", "late"]


async def test_a_loop_timer_cancelled_by_one_due_with_it_never_fires() -> None:
    scheduler = LoopScheduler()
    fired: list[str] = []
    second: list[Any] = []
    scheduler.call_later(0.01, lambda: (fired.append("first"), second[0].cancel()))
    second.append(scheduler.call_later(0.01, lambda: fired.append("second")))
    await _fired_after(scheduler, 0.02)
    assert fired == ["first"]


async def test_a_raising_loop_timer_is_reported_and_the_others_still_fire() -> None:
    scheduler = LoopScheduler()
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    scheduler.call_later(0.01, broken)
    scheduler.call_later(0.01, lambda: fired.append("after"))
    try:
        await _fired_after(scheduler, 0.02)
    finally:
        loop.set_exception_handler(None)
    assert fired == ["after"]
    assert [str(c["exception"]) for c in reported] == ["boom"]


async def test_cancelled_loop_timers_do_not_pile_up() -> None:
    """A lease is re-armed at every heartbeat: the cancelled timers must not be kept for
    their whole delay, as a daemon with many reporters would then hold millions."""
    scheduler = LoopScheduler()
    for _ in range(10_000):
        scheduler.call_later(3600, lambda: None).cancel()
    kept = scheduler.call_later(3600, lambda: None)
    queue = scheduler._queue
    assert queue is not None and len(queue._due) <= 2 * queue.COMPACT_AT
    await _fired_after(scheduler, 0.001)  # still serving
    kept.cancel()
