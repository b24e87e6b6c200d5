"""Helpers shared by the test suites: waiting on conditions without sleeping blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], object], *, timeout: float = 5.0, what: str = "") -> None:
    """Poll `condition` every few milliseconds until it is truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.005)


def until_sync(condition: Callable[[], object], *, timeout: float = 5.0, what: str = "") -> None:
    """Blocking twin of `until`, for tests that drive other processes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.005)
