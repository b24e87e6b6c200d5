"""Fixtures for the built-in agents' tests: a real registry and helpers that wait on its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.model import Prompt, PromptOpened, Task
from core.registry import Registry, Subscription


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """An empty registry with no default timeout; every run is cancelled at the end."""
    reg = Registry(max_concurrent=4, default_timeout=None, epoch=7)
    try:
        yield reg
    finally:
        await reg.close()


async def next_prompt(sub: Subscription, task_id: int, *, timeout: float = 5.0) -> Prompt:
    """The next prompt the task opens, as announced by the registry."""

    async def find() -> Prompt:
        async for event in sub:
            if isinstance(event.body, PromptOpened) and event.body.task.id == task_id:
                return event.body.prompt
        raise AssertionError("subscription ended")

    return await asyncio.wait_for(find(), timeout)


async def ended(registry: Registry, task_id: int, *, timeout: float = 5.0) -> Task:
    """The task once it ended and its run (with its clean-up) has returned."""
    done = await registry.wait([task_id], timeout=timeout)
    assert task_id in done, f"task {task_id} still {registry.get(task_id).status.value}"
    await asyncio.wait_for(registry.join(task_id), timeout)
    return done[task_id]
