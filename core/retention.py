"""Retention: ended task trees leave memory (the journal keeps them), so a daemon stays small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from core.errors import BadRequest
from core.model import Task

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
        """Evict what the policy no longer keeps; returns the evicted task ids."""
        tasks = self.registry.list(limit=None)
        by_id = {t.id: t for t in tasks}
        children: dict[int, list[Task]] = {}
        roots: list[Task] = []
        ended = 0
        for task in tasks:
            if task.status.is_ended:
                ended += 1
            if task.parent_id is not None and task.parent_id in by_id:
                children.setdefault(task.parent_id, []).append(task)
            else:
                roots.append(task)
        if ended <= self.max_ended and self.max_age is None:
            return []
        candidates: list[tuple[float, int, list[int]]] = []
        for root in roots:
            members = _subtree(root, children)
            if all(t.status.is_ended for t in members):
                last = max((t.ended_at or 0.0) for t in members)
                candidates.append((last, root.id, [t.id for t in reversed(members)]))
        candidates.sort()
        now = self.registry.clock()
        chosen: list[int] = []
        for last, _, ids in candidates:
            too_many = ended > self.max_ended
            too_old = self.max_age is not None and now - last > self.max_age
            if not (too_many or too_old):
                break
            chosen.extend(ids)
            ended -= len(ids)
        if not chosen:
            return []
        dropped = self.registry.evict(chosen)
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


def _subtree(root: Task, children: dict[int, list[Task]]) -> list[Task]:
    """The root and its descendants, parents before children."""
    out = []
    stack = [root]
    while stack:
        task = stack.pop()
        out.append(task)
        stack.extend(children.get(task.id, ()))
    return out
