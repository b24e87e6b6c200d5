"""LoopLock owes the event loop a wake exactly when a borrow left it something to do
sooner than it planned: never for nothing (a wake costs the loop a turn and the lock a
hand-over), never missing one (a timer would fire when the loop next happened to wake)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from core.looplock import LoopLock

PLANNED = 60.0
"""Seconds until the sleeping loop's own next timer: it wakes no sooner unless woken."""


@pytest.fixture
def sleeping() -> Iterator[tuple[asyncio.AbstractEventLoop, LoopLock]]:
    """A selector loop in its own thread with a LoopLock installed, asleep until `PLANNED`."""
    loop = asyncio.SelectorEventLoop()
    lock = LoopLock(loop)
    installed = threading.Event()

    def install() -> None:
        lock.install()
        loop.call_later(PLANNED, lambda: None)
        installed.set()

    loop.call_soon(install)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    assert installed.wait(5)
    try:
        yield loop, lock
    finally:
        def stop() -> None:
            lock.uninstall()
            loop.stop()

        loop.call_soon_threadsafe(stop)
        thread.join(5)
        loop.close()


def test_a_sooner_live_timer_behind_a_cancelled_one_is_a_wake_owed(
        sleeping: tuple[asyncio.AbstractEventLoop, LoopLock]) -> None:
    """The heap's head is a cancelled timer armed in the same borrow: the live one behind
    it still needs the loop before its planned wake, and fires on time once woken."""
    loop, lock = sleeping
    fired = threading.Event()
    with lock.borrow(defer_wake=True):
        running = asyncio.get_running_loop()
        running.call_later(0.05, fired.set)
        running.call_later(0.01, lambda: None).cancel()
    assert lock.wake_owed
    lock.wake()
    assert fired.wait(PLANNED / 4), "the live timer waited for the loop's planned wake"


def test_a_timer_armed_and_cancelled_in_a_borrow_owes_no_wake(
        sleeping: tuple[asyncio.AbstractEventLoop, LoopLock]) -> None:
    loop, lock = sleeping
    with lock.borrow(defer_wake=True):
        asyncio.get_running_loop().call_later(0.01, lambda: None).cancel()
    assert not lock.wake_owed


def test_a_timer_due_after_the_planned_wake_owes_none_and_a_ready_callback_does(
        sleeping: tuple[asyncio.AbstractEventLoop, LoopLock]) -> None:
    loop, lock = sleeping
    with lock.borrow(defer_wake=True):
        asyncio.get_running_loop().call_later(PLANNED * 2, lambda: None)
    assert not lock.wake_owed
    ran = threading.Event()
    with lock.borrow(defer_wake=True):
        asyncio.get_running_loop().call_soon(ran.set)
    assert lock.wake_owed
    lock.wake()
    assert ran.wait(5)


def test_a_borrow_without_defer_wakes_the_loop_itself(
        sleeping: tuple[asyncio.AbstractEventLoop, LoopLock]) -> None:
    loop, lock = sleeping
    fired = threading.Event()
    with lock.borrow():
        running = asyncio.get_running_loop()
        running.call_later(0.02, fired.set)
        running.call_later(0.01, lambda: None).cancel()
    assert not lock.wake_owed
    assert fired.wait(PLANNED / 4)
