"""Agents for the daemon under test: `taskdeck serve --agents NAME=tests.journal.agents:ATTR`."""

from __future__ import annotations

import asyncio

from core.context import AgentContext


async def forever(ctx: AgentContext) -> str:
    """Works until cancelled: an in-process task that is running when the daemon dies."""
    ctx.progress("working")
    await asyncio.Event().wait()
    return "never"
