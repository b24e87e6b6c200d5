"""A real daemon, and a person answering the graph's questions through the client library."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.client import Client, SyncClient
from core.model import Prompt, Task
from tests.cli import conftest as cli
from tests.cli.conftest import Deck
from tests.support import until, until_sync

deck = cli.deck
"""The real daemon (`taskdeck serve` in a temp runtime dir), as a fixture here too."""


class Person:
    """Somebody at taskdeck: sees each new question and answers it, through the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: set[int] = set()

    async def question(self) -> Prompt:
        """The next question nobody has looked at yet (waits for it)."""
        fresh: list[Prompt] = []

        def asked() -> bool:
            fresh[:] = [p for p in self.client.mirror.pending_oldest_first()
                        if p.id not in self.seen]
            return bool(fresh)

        await until(asked, timeout=15, what="the graph's next question")
        self.seen.add(fresh[0].id)
        return fresh[0]

    async def answer(self, text: str, reason: str | None = None) -> Prompt:
        """Answer the next question; returns it as it was asked."""
        prompt = await self.question()
        await self.client.answer(prompt.id, text, reason=reason)
        return prompt


@pytest.fixture
async def person(deck: Deck) -> AsyncIterator[Person]:
    async with Client(deck.runtime_dir, client_name="test") as client:
        await client.start_mirror()
        await client.wait_synced()
        yield Person(client)


def asking(deck: Deck, description: str, *, after: int = 0) -> Task:
    """Wait until the task with this description asks a question newer than prompt `after`.

    Polls through the client library: `taskdeck ls` in a loop would start a Python a poll.
    """
    found: list[Task] = []

    def asked() -> bool:
        found[:] = [t for t in client.list_tasks() if t.description == description
                    and t.blocked_on is not None and t.blocked_on.prompt_id > after]
        return bool(found)

    with SyncClient(deck.runtime_dir) as client:
        until_sync(asked, timeout=20, what=f"{description!r} to ask")
    return found[0]
