"""An asker takes only the answer to the question it asked, never one given to another
question that got the same ids from a daemon that restarted without remembering them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.client import Client
from core.errors import InvalidState
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry

Connect = Callable[..., Awaitable[Client]]


async def test_old_asker_refuses_the_answer_to_a_new_question_with_its_ids(
    runtime_dir: Path, connect: Connect
) -> None:
    first = make_registry()  # no journal: the next daemon gives the same ids again
    async with Daemon(first, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        asker = await connect(request_timeout=0.2, retries=3)
        old = await asker.open_task("deploy A", lease=30)
        asking = asyncio.ensure_future(old.ask("Deploy A to prod?"))
        await until(lambda: first.pending_prompts(), what="the old question")
        asked = first.pending_prompts()[0]
    await first.close()

    second = make_registry()
    async with Daemon(second, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        other = await connect()
        new = await other.open_task("wipe staging", lease=30)
        assert new.id == old.id  # the same task id, given again
        wiping = asyncio.ensure_future(new.ask("Wipe the staging db?"))
        await until(lambda: second.pending_prompts(), what="the new question")
        assert second.pending_prompts()[0].id == asked.id  # and the same prompt id
        await until(lambda: asker.mirror.epoch == second.epoch, timeout=10, what="the resync")
        await other.answer(asked.id, "approve")
        assert (await asyncio.wait_for(wiping, 5)).answer == "approve"
        # The old asker must not take that approval: its question is gone, it says so.
        with pytest.raises(InvalidState, match="no longer knows question 'Deploy A to prod\\?'"):
            await asyncio.wait_for(asking, 5)
        await new.close()
        await old.close()
    await second.close()
