"""`taskdeck serve --notify URL`: a short notice when a question opens, for a person away
from the terminal.

A client of the daemon like any other (it follows the mirror through `core.client`); the
registry knows nothing of it. `Batcher` decides when a notice goes and what it holds, with
no I/O: a burst of questions becomes one notice, and notices are at least `interval` apart,
so a flood of 500 prompts sends a handful, not 500. Questions answered before their notice
goes are left out of it. Notices go through apprise (push services, chat, e-mail, and plain
JSON webhooks); they link to the web dashboard when one runs, never with its token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import BadRequest, TaskdeckError, Unavailable
from core.model import PromptState
from core.text import one_line

if TYPE_CHECKING:
    from core.client import Changes
    from core.mirror import Mirror
    from core.model import Prompt

log = logging.getLogger(__name__)

WINDOW = 2.0
"""Seconds a first question waits for others opening with it (a burst is one notice)."""
INTERVAL = 30.0
"""Least seconds between two notices; questions opening meanwhile wait for the next."""
LISTED = 3
"""Questions spelled out in one notice; the rest are counted."""
QUESTION_CHARS = 140
"""Characters of a question quoted in a notice (a phone shows about two lines)."""

WEBHOOK_SCHEMES = {"http": "json", "https": "jsons"}
"""A plain http(s) URL is a JSON webhook: apprise's json:// posts {title, message, type}."""


@dataclass(frozen=True)
class Waiting:
    """One question, as a notice tells it."""

    prompt_id: int
    task_id: int
    path: str
    """Agents from the root to the asking task, e.g. `demo#1 › shell#4`."""
    question: str
    """Its first line, escaped and cut to `QUESTION_CHARS`."""


@dataclass
class Batcher:
    """When the next notice is due, and what it says; fed by the mirror, driven by a clock."""

    window: float = WINDOW
    interval: float = INTERVAL
    queued: dict[int, Waiting] = field(default_factory=dict)
    """Questions opened and not yet told, by prompt id, oldest first."""
    told: set[int] = field(default_factory=set)
    """Prompt ids already told (or dropped), never told twice."""
    first_at: float | None = None
    """When the oldest queued question arrived."""
    last_sent: float | None = None

    def opened(self, waiting: Waiting, now: float) -> None:
        """A question opened (or was first seen pending)."""
        if waiting.prompt_id in self.told or waiting.prompt_id in self.queued:
            return
        if not self.queued:
            self.first_at = now
        self.queued[waiting.prompt_id] = waiting

    def closed(self, prompt_id: int) -> None:
        """Answered, cancelled or timed out before its notice went: nobody needs telling."""
        self.told.add(prompt_id)
        self.queued.pop(prompt_id, None)
        if not self.queued:
            self.first_at = None

    def due_at(self) -> float | None:
        """When the next notice may go; None while nothing waits."""
        if not self.queued or self.first_at is None:
            return None
        due = self.first_at + self.window
        if self.last_sent is not None:
            due = max(due, self.last_sent + self.interval)
        return due

    def take(self, now: float) -> list[Waiting]:
        """The questions of the notice due now (empty if none is due)."""
        due = self.due_at()
        if due is None or now < due:
            return []
        batch = list(self.queued.values())
        self.told.update(self.queued)
        self.queued.clear()
        self.first_at = None
        self.last_sent = now
        return batch


def waiting_of(prompt: Prompt, mirror: Mirror) -> Waiting:
    """How a notice tells one pending question: its task's path of agents and first line."""
    path = [*mirror.ancestors(prompt.task_id)]
    task = mirror.tasks.get(prompt.task_id)
    if task is not None:
        path.append(task)
    question = one_line(prompt.question)
    if len(question) > QUESTION_CHARS:
        question = question[: QUESTION_CHARS - 1] + "…"
    return Waiting(prompt.id, prompt.task_id,
                   " › ".join(f"{one_line(t.agent)}#{t.id}" for t in path), question)


def compose(batch: Sequence[Waiting], dashboard: str | None) -> tuple[str, str]:
    """(title, body) of one notice.

    Args:
        dashboard: The web dashboard's address (never with its token), if one runs.
    """
    count = len(batch)
    title = (f"taskdeck: #{batch[0].task_id} asks" if count == 1
             else f"taskdeck: {count} questions waiting")
    lines = [f"#{w.task_id} {w.path}: {w.question}" for w in batch[:LISTED]]
    if count > LISTED:
        lines.append(f"… and {count - LISTED} more")
    lines.append(f"Answer at {dashboard}" if dashboard
                 else "Answer with `taskdeck tui` or `taskdeck answer`")
    return title, "\n".join(lines)


def service_url(url: str) -> str:
    """apprise's URL for what the user gave: http(s)://… is a plain JSON webhook."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in WEBHOOK_SCHEMES:
        return f"{WEBHOOK_SCHEMES[scheme.lower()]}://{rest}"
    return url


def make_sender(urls: Sequence[str]) -> Any:
    """An apprise object for the URLs, each checked now.

    Raises:
        Unavailable: apprise is not installed.
        BadRequest: apprise does not understand a URL.
    """
    try:
        import apprise
    except ImportError:
        raise Unavailable("--notify needs apprise: pip install 'taskdeck[notify]'") from None
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(service_url(url)):
            raise BadRequest(f"--notify {url!r}: not a URL apprise knows (a webhook is "
                             "http(s)://HOST/PATH; services as in apprise's list, e.g. ntfy://TOPIC)")
    return sender


@dataclass
class Notifier:
    """Follows the daemon and sends notices through `sender` as `batcher` allows."""

    sender: Any
    runtime_dir: Path
    batcher: Batcher = field(default_factory=Batcher)
    clock: Callable[[], float] = time.monotonic
    sent: int = 0
    """Notices handed to the sender (for the log line and tests)."""
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_change(self, changes: Changes, mirror: Mirror) -> None:
        """Queue what opened, drop what closed; the send loop does the rest."""
        now = self.clock()
        for prompt in changes.closed:
            self.batcher.closed(prompt.id)
        opened = mirror.pending_oldest_first() if changes.resynced else changes.opened
        for prompt in opened:
            current = mirror.prompts.get(prompt.id)
            if current is not None and current.state is PromptState.PENDING:  # still asking
                self.batcher.opened(waiting_of(current, mirror), now)
        self._wake.set()

    async def run(self) -> None:
        """Follow the daemon until cancelled (it reconnects on its own if the daemon goes)."""
        from core.client import Client

        try:
            async with Client(self.runtime_dir, client_name="notify") as client:
                await client.start_mirror(lambda changes: self.on_change(changes, client.mirror))
                while True:
                    await self._send_due()
        except TaskdeckError as exc:
            log.warning("taskdeck: notices stopped: %s", exc)

    async def _send_due(self) -> None:
        due = self.batcher.due_at()
        self._wake.clear()
        if due is None:
            await self._wake.wait()
            return
        delay = due - self.clock()
        if delay > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            return
        batch = self.batcher.take(self.clock())
        if batch:
            await self.send(batch)

    async def send(self, batch: Sequence[Waiting]) -> None:
        """One notice; a failing service is logged, never fatal to the daemon."""
        from core.webfile import read_web_info

        web = read_web_info(self.runtime_dir)
        title, body = compose(batch, web.url if web is not None else None)
        self.sent += 1
        try:
            ok = await asyncio.to_thread(self.sender.notify, body=body, title=title)
        except Exception as exc:  # a third-party plugin may raise anything; the daemon goes on
            log.warning("notice not sent: %s", exc)
            return
        if not ok:
            log.warning("a notice about %d question(s) was not accepted by every service",
                        len(batch))
