"""Retention: ended task trees leave memory oldest first, whole trees only, kept in the journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadRequest
from core.journal import Journal
from core.model import TaskStatus, TasksEvicted
from core.registry import Registry
from core.retention import Retention
from tests.support import until


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ended_tree(registry: Registry, size: int = 1) -> list[int]:
    """A finished root with `size - 1` finished children; returns their ids, root first."""
    root = registry.open_external("root", lease=600)
    ids = [root.id]
    for _ in range(size - 1):
        child = registry.open_external("child", parent_id=root.id, lease=600)
        registry.finish(child.id)
        ids.append(child.id)
    registry.finish(root.id)
    return ids


async def test_count_limit_evicts_oldest_whole_trees() -> None:
    clock = Clock()
    registry = Registry(clock=clock)
    try:
        trees = []
        for _ in range(5):
            trees.append(ended_tree(registry, size=3))
            clock.now += 1
        live = registry.open_external("running", lease=600)
        retention = Retention(registry, max_ended=7)
        evicted = retention.sweep()
        # 15 ended tasks, 7 allowed: the three oldest trees (9 tasks) must go, whole.
        assert sorted(evicted) == sorted(trees[0] + trees[1] + trees[2])
        remaining = {t.id for t in registry.list(limit=None)}
        assert remaining == set(trees[3] + trees[4]) | {live.id}
        assert retention.sweep() == []  # within the limit now
        assert retention.evicted == 9
    finally:
        await registry.close()


async def test_a_tree_with_live_members_stays() -> None:
    clock = Clock()
    registry = Registry(clock=clock)
    try:
        root = registry.open_external("root", lease=600)
        child = registry.open_external("child", parent_id=root.id, lease=600)
        registry.finish(child.id)  # one ended task, but its root still runs
        old = ended_tree(registry)
        retention = Retention(registry, max_ended=0)
        assert retention.sweep() == old
        assert {t.id for t in registry.list(limit=None)} == {root.id, child.id}
        registry.finish(root.id)
        assert sorted(retention.sweep()) == [root.id, child.id]
        assert len(registry) == 0
    finally:
        await registry.close()


async def test_age_limit_counts_from_the_last_end_in_the_tree() -> None:
    clock = Clock()
    registry = Registry(clock=clock)
    try:
        old = ended_tree(registry)
        clock.now += 50
        root = registry.open_external("root", lease=600)
        child = registry.open_external("child", parent_id=root.id, lease=600)
        registry.finish(root.id)  # the root ended long ago ...
        clock.now += 60
        registry.finish(child.id)  # ... but its child ended just now
        retention = Retention(registry, max_age=100)
        assert retention.sweep() == old  # 110 s old
        clock.now += 101
        assert sorted(retention.sweep()) == [root.id, child.id]
    finally:
        await registry.close()


async def test_evicted_tasks_stay_in_the_journal(journal_path: Path) -> None:
    registry = Registry()
    journal = Journal.open(journal_path)
    journal.attach(registry)
    try:
        ids = ended_tree(registry, size=4)
        Retention(registry, max_ended=0).sweep()
        assert len(registry) == 0
        journal.commit()
        for task_id in ids:
            task, _ = journal.task(task_id)
            assert task.status is TaskStatus.FINISHED
    finally:
        journal.close()
        await registry.close()


async def test_started_retention_sweeps_on_its_own() -> None:
    registry = Registry()
    sub = registry.subscribe()
    try:
        ids = ended_tree(registry, size=2)
        async with Retention(registry, max_ended=0, interval=0.01) as retention:
            await until(lambda: len(registry) == 0, what="a background sweep")
            assert retention.evicted == 2
        evictions = [e.body for e in sub.drain() if isinstance(e.body, TasksEvicted)]
        assert sorted(i for body in evictions for i in body.task_ids) == sorted(ids)
    finally:
        sub.close()
        await registry.close()


def test_bad_settings_are_refused() -> None:
    registry = Registry()
    with pytest.raises(BadRequest):
        Retention(registry, max_ended=-1)
    with pytest.raises(BadRequest):
        Retention(registry, max_age=-5)
    with pytest.raises(BadRequest):
        Retention(registry, interval=0)
