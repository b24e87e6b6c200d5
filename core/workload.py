"""The demo workload: root tasks submitted over time so the dashboard always has work to show."""

from __future__ import annotations

import asyncio
import random

from core.agents.demo import DEMO_TASKS
from core.errors import TaskdeckError
from core.registry import Registry


async def run_demo_workload(
    registry: Registry,
    *,
    seed: int = 0,
    speed: float = 1.0,
    keep_going: bool = True,
) -> None:
    """Submit the demo's root tasks, staggered, then a new one whenever few are live.

    Runs until cancelled (or, without `keep_going`, once every root is submitted).
    """
    rng = random.Random(seed)
    for agent, description in DEMO_TASKS:
        registry.submit(agent, description)
        await asyncio.sleep(rng.uniform(0.3, 1.2) / speed)
    if not keep_going:
        return
    round_ = 1
    while True:
        await asyncio.sleep(rng.uniform(4.0, 8.0) / speed)
        live = sum(
            1 for t in registry.list(roots_only=True, limit=50) if not t.status.is_ended
        )
        if live >= len(DEMO_TASKS) // 2:
            continue
        agent, description = DEMO_TASKS[rng.randrange(len(DEMO_TASKS))]
        round_ += 1
        try:
            registry.submit(agent, f"{description} (round {round_})")
        except TaskdeckError:  # the agent may have been replaced by the user's own
            return
