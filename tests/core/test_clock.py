"""The manual clock tests move time with: due callbacks fire in order, each at its own time."""

from __future__ import annotations

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
