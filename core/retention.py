"""Retention: ended task trees leave memory (the journal keeps them), so a daemon stays small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from core.errors import BadRequest, UnknownTask
from core.model import TaskStatus

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)


class Retention:
    """Evicts whole ended root-level subtrees, oldest first, beyond a count or an age.

    A subtree is a candidate once every member has ended; its age is counted
    from the moment its last member ended. Subtrees, not single tasks, leave,
    so the dashboard never shows a tree with holes in it. Evicted tasks
    stay in the journal (`Journal.task`, `Journal.history`).

    Args:
        registry: the registry to keep small.
        max_ended: ended tasks kept in memory at most (counted over whole subtrees).
        max_age: seconds an ended subtree stays in memory; None keeps it until
            the count pushes it out.
        interval: seconds between two sweeps once `start()`ed.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        max_ended: int = 10_000,
        max_age: float | None = None,
        interval: float = 5.0,
    ) -> None:
        if max_ended < 0:
            raise BadRequest("max_ended must not be negative")
        if max_age is not None and max_age < 0:
            raise BadRequest("max_age must not be negative")
        if interval <= 0:
            raise BadRequest("interval must be positive")
        self.registry = registry
        self.max_ended = max_ended
        self.max_age = max_age
        self.interval = interval
        self.evicted = 0
        """Tasks evicted by this policy so far."""
        self._runner: asyncio.Task[None] | None = None

    def sweep(self) -> list[int]:
        """Evict what the policy no longer keeps; returns the evicted task ids.

        Only ended tasks are read, so a sweep of a registry within its limits costs
        little however many tasks are live.
        """
        registry = self.registry
        ended = [
            *registry.list(status=TaskStatus.FINISHED, limit=None),
            *registry.list(status=TaskStatus.FAILED, limit=None),
        ]
        count = len(ended)
        if count <= self.max_ended and self.max_age is None:
            return []
        ended_ids = {t.id for t in ended}
        candidates: list[tuple[float, int, int]] = []
        for task in ended:
            if task.parent_id in ended_ids or _exists(registry, task.parent_id):
                continue  # not a root: it leaves with its root
            members = registry.subtree(task.id)
            if all(t.status.is_ended for t in members):
                last = max((t.ended_at or 0.0) for t in members)
                candidates.append((last, task.id, len(members)))
        candidates.sort()
        now = registry.clock()
        chosen: list[int] = []
        for last, root_id, size in candidates:
            too_many = count > self.max_ended
            too_old = self.max_age is not None and now - last > self.max_age
            if not (too_many or too_old):
                break
            chosen.append(root_id)
            count -= size
        if not chosen:
            return []
        dropped = registry.evict(chosen)
        self.evicted += len(dropped)
        return dropped

    def start(self) -> None:
        """Sweep every `interval` seconds in the running event loop until `stop()`."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="taskdeck-retention"
            )

    def stop(self) -> None:
        """Stop sweeping (idempotent)."""
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the sweep period, not a synchronisation
            try:
                self.sweep()
            except Exception:  # a failed sweep must not stop later ones
                log.exception("retention sweep failed")

    async def __aenter__(self) -> Retention:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        runner = self._runner
        self.stop()
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def _exists(registry: Registry, task_id: int | None) -> bool:
    if task_id is None:
        return False
    try:
        registry.get(task_id)
    except UnknownTask:
        return False
    return True
