"""Following the daemon live (the Clone pattern): subscribe, load a snapshot, apply the
events after it, resync on any gap, and settle the prompts an `ask` waits on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from core import protocol as p
from core.client.calls import _question_lost, _same_question
from core.client.commands import _AsyncCommands
from core.errors import TaskdeckError, Unavailable, UnknownTask
from core.mirror import Mirror, OutOfSync
from core.model import (
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
)

log = logging.getLogger(__name__)

STALE_AFTER = 1.5
"""Heartbeat intervals of silence before the mirror says it is stale."""

DISCONNECTED_AFTER = 3.0
"""Heartbeat intervals of silence before the mirror says it is disconnected and reconnects."""

BATCH_LIMIT = 5000
"""Most messages applied before `on_change` is called (keeps a flood from starving the loop)."""


class ConnectionState(str, enum.Enum):
    """How current the mirror is."""

    CONNECTING = "connecting"
    """Not synced yet: subscribing or loading the first snapshot."""
    LIVE = "live"
    """Synced, and the daemon was heard from recently."""
    STALE = "stale"
    """Synced, but nothing heard for 1.5 heartbeat intervals: the view may be behind."""
    DISCONNECTED = "disconnected"
    """Nothing heard for 3 intervals (or no daemon); reconnecting in the background."""


@dataclasses.dataclass
class Changes:
    """One batch of mirror updates, handed to `on_change`."""

    task_ids: set[int] = dataclasses.field(default_factory=set)
    """Tasks created, changed or evicted in this batch."""
    opened: list[Prompt] = dataclasses.field(default_factory=list)
    """Prompts that opened in this batch (bell and notification)."""
    resynced: bool = False
    """The mirror was reloaded from a snapshot: redraw everything."""
    state: ConnectionState = ConnectionState.LIVE
    """The connection state after this batch."""
    closed: list[Prompt] = dataclasses.field(default_factory=list)
    """Prompts answered, cancelled or timed out in this batch."""
    evicted: list[int] = dataclasses.field(default_factory=list)
    """Tasks that left the registry in this batch (also in `task_ids`)."""


class _Disconnected(Exception):
    """The daemon fell silent; reconnect."""


class _Resync(Exception):
    """The mirror missed something; take a fresh snapshot."""


class _Following(_AsyncCommands):
    """The live half of `Client`: its mirror, kept up to date in the background."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mirror = Mirror()
        self.state = ConnectionState.CONNECTING
        self.resync_count = 0
        """Snapshots loaded into the mirror, since this client was made."""
        self._mirror_task: asyncio.Task[None] | None = None
        self._on_change: Callable[[Changes], None] | None = None
        self._synced = asyncio.Event()
        self._prompt_waiters: dict[int, tuple[Prompt, asyncio.Future[tuple[Task, Prompt]]]] = {}
        """Prompt id -> (the prompt as asked, the future an `ask` waits on)."""
        self.journal_error: str | None = None
        """Why the daemon cannot record decisions (it refuses them meanwhile), as its
        hello and heartbeats last said; None while its journal is fine."""

    async def close(self) -> None:
        """Stop the mirror, fail the prompt waits, then close the sockets."""
        self._closed = True
        if self._mirror_task is not None:
            self._mirror_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mirror_task
            self._mirror_task = None
        for _, future in self._prompt_waiters.values():
            if not future.done():
                future.set_exception(Unavailable("the client was closed"))
        self._prompt_waiters.clear()
        await super().close()

    # ------------------------------------------------------------ live mirror

    async def start_mirror(self, on_change: Callable[[Changes], None] | None = None) -> None:
        """Keep `mirror` up to date in the background, calling `on_change` after each batch.

        Returns at once; `wait_synced` waits for the first snapshot. Reconnects and
        resyncs on its own until `close()`.
        """
        if on_change is not None:
            self._on_change = on_change
        if self._mirror_task is None or self._mirror_task.done():
            self._mirror_task = asyncio.get_running_loop().create_task(
                self._run_mirror(), name="taskdeck-mirror"
            )

    async def wait_synced(self, timeout: float = 5.0) -> None:
        """Wait until the mirror holds a snapshot and is live.

        Raises:
            Unavailable: not synced within `timeout` seconds.
        """
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            where = self.runtime_dir or (self.connection and self.connection.events)
            raise Unavailable(
                f"could not sync with the daemon ({where}) within {timeout:g}s"
            ) from None

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is not ConnectionState.LIVE and state is not ConnectionState.STALE:
            self._synced.clear()
        self._notify(Changes(state=state))

    def _notify(self, changes: Changes) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(changes)
        except Exception:  # a broken view must not stop the mirror
            log.exception("on_change callback failed")

    async def _run_mirror(self) -> None:
        while not self._closed:
            try:
                await self._mirror_session()
            except (_Disconnected, Unavailable) as exc:
                log.info("mirror disconnected: %s", exc)
            except TaskdeckError as exc:
                log.warning("mirror cannot sync: %s", exc)
            self._set_state(ConnectionState.DISCONNECTED)
            if self._fixed is None:
                # The connection file may be missing while a daemon restarts: wait a beat.
                with contextlib.suppress(TaskdeckError):
                    self._refresh_connection()
                    continue
                await asyncio.sleep(self.heartbeat)

    async def _mirror_session(self) -> None:
        """Subscribe, sync, and apply events until the daemon falls silent."""
        conn = self._refresh_connection()
        sub = self._context().socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.RCVHWM, self.options.rcvhwm)
            self._subscribe(sub, conn.events)
            # The first message proves the subscription is live: events from now on reach us.
            if not await sub.poll(int(self.heartbeat * DISCONNECTED_AFTER * 1000), zmq.POLLIN):
                raise _Disconnected(f"no heartbeat from {conn.events}")
            while True:
                try:
                    await self._sync_and_follow(sub)
                except _Resync as exc:
                    log.info("mirror resyncing: %s", exc)
        finally:
            sub.close(linger=0)

    async def _sync_and_follow(self, sub: zmq.asyncio.Socket) -> None:
        """Load a snapshot, drop what it already holds, then apply live batches."""
        reply = await self._call(p.GetSnapshot(), p.SnapshotResult)
        snapshot = reply.state()
        self.journal_error = (await self.hello()).get("journal_error")
        was_synced = self.mirror.synced
        if self.mirror.epoch != snapshot.epoch:
            # A restarted daemon may reuse ids: old prompt history would be misleading.
            self.mirror.history.clear()
            self.mirror.prompts.clear()
        before_tasks = set(self.mirror.tasks)
        before_prompts = set(self.mirror.prompts)
        self.mirror.load(snapshot, reply.tree())
        self.resync_count += 1
        self.state = ConnectionState.LIVE
        self._synced.set()
        changes = Changes(task_ids=before_tasks | set(self.mirror.tasks), resynced=True,
                          state=self.state)
        if was_synced:  # prompts that opened while we were not looking still ring the bell
            changes.opened = [q for i, q in sorted(self.mirror.prompts.items())
                              if i not in before_prompts]
        self._check_waiters_after_resync()
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pending: Changes | None = changes
        # Drain through a plain view of the same socket: an asyncio poll + recv per
        # message cost five times the message's own decode and apply (see
        # docs/BENCHMARKS.md); `sub.poll` below still waits without blocking the loop.
        raw = zmq.Socket.shadow(sub.underlying)
        while True:
            # Apply everything already queued, then report the batch once.
            count = 0
            while count < BATCH_LIMIT:
                try:
                    frames = raw.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                count += 1
                if pending is None:
                    pending = Changes(state=ConnectionState.LIVE)
                self._take(frames, pending)
            if count:
                heard = loop.time()
            if pending is not None:
                if self.state is not ConnectionState.LIVE:
                    self.state = ConnectionState.LIVE
                    self._synced.set()
                pending.state = self.state
                self._notify(pending)
                pending = None
            if count >= BATCH_LIMIT:
                await asyncio.sleep(0)
                continue
            silence = loop.time() - heard
            limit = STALE_AFTER if self.state is ConnectionState.LIVE else DISCONNECTED_AFTER
            wait = max(0.0, self.heartbeat * limit - silence)
            if await sub.poll(max(1, int(wait * 1000)), zmq.POLLIN):
                continue
            silence = loop.time() - heard
            if silence >= self.heartbeat * DISCONNECTED_AFTER:
                raise _Disconnected(f"nothing heard for {silence:.1f}s")
            if silence >= self.heartbeat * STALE_AFTER:
                self._set_state(ConnectionState.STALE)

    def _take(self, frames: list[bytes], changes: Changes) -> None:
        """Apply one PUB message to the mirror, recording what it changed.

        Raises:
            _Resync: a gap, a new epoch, a heartbeat ahead, or an unreadable message.
        """
        if len(frames) != 2:
            raise _Resync(f"unexpected message of {len(frames)} frames")
        topic, data = frames
        try:
            if topic == p.HEARTBEAT_TOPIC:
                beat = p.HEARTBEAT_DECODER.decode(data)
                if beat.epoch != self.mirror.epoch:
                    raise _Resync(f"the daemon restarted (epoch {beat.epoch})")
                if beat.seq > self.mirror.seq:
                    raise _Resync(f"heartbeat at seq {beat.seq}, mirror at {self.mirror.seq}")
                self.journal_error = beat.journal_error
                return
            if topic != p.EVENT_TOPIC:
                return  # a topic from a newer daemon: not ours to read
            event = p.EVENT_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise _Resync(f"unreadable message: {exc}") from None
        try:
            applied = self.mirror.apply(event)
        except OutOfSync as exc:
            raise _Resync(str(exc)) from None
        if applied:
            self._record(event, changes)

    def _record(self, event: Event, changes: Changes) -> None:
        body = event.body
        match body:
            case TaskCreated(task=task) | TaskChanged(task=task):
                changes.task_ids.add(task.id)
            case PromptOpened(task=task, prompt=prompt):
                changes.task_ids.add(task.id)
                changes.opened.append(prompt)
            case PromptClosed(task=task, prompt=prompt):
                changes.task_ids.add(task.id)
                changes.closed.append(prompt)
                waiter = self._prompt_waiters.pop(prompt.id, None)
                if waiter is not None and not waiter[1].done():
                    if _same_question(waiter[0], prompt):
                        waiter[1].set_result((task, prompt))
                    else:  # the id was given again after a restart: not our answer
                        waiter[1].set_exception(_question_lost(waiter[0]))
            case TasksEvicted(task_ids=ids):
                changes.task_ids.update(ids)
                changes.evicted.extend(ids)

    # ---------------------------------------------------------- prompt waits

    def _watch_prompt(self, prompt: Prompt) -> asyncio.Future[tuple[Task, Prompt]]:
        future: asyncio.Future[tuple[Task, Prompt]] = asyncio.get_running_loop().create_future()
        for closed in self.mirror.history.get(prompt.task_id, ()):
            if closed.id == prompt.id and _same_question(prompt, closed):
                # answered before we got the Ask reply
                future.set_result((self.mirror.tasks[prompt.task_id], closed))
                return future
        self._prompt_waiters[prompt.id] = (prompt, future)
        return future

    def _check_waiters_after_resync(self) -> None:
        """A prompt closed inside a gap shows only as missing from the snapshot: ask.

        One pending under the same id but asking something else means the daemon
        restarted without our question and gave its id again: that is not ours.
        """
        for prompt_id, (asked, future) in list(self._prompt_waiters.items()):
            if future.done():
                continue
            pending = self.mirror.prompts.get(prompt_id)
            if pending is None:
                asyncio.get_running_loop().create_task(self._check_prompt(asked, future))
            elif not _same_question(asked, pending):
                self._prompt_waiters.pop(prompt_id, None)
                future.set_exception(_question_lost(asked))

    async def _check_prompt(
        self, asked: Prompt, future: asyncio.Future[tuple[Task, Prompt]]
    ) -> None:
        try:
            task, prompts = await self.get(asked.task_id)
        except UnknownTask:
            task, prompts = None, []
        except TaskdeckError as exc:
            if not future.done():
                future.set_exception(exc)
            return
        for prompt in prompts:
            if prompt.id != asked.id:
                continue
            if not _same_question(asked, prompt):
                break
            if prompt.state is not PromptState.PENDING:
                self._prompt_waiters.pop(asked.id, None)
                if not future.done():
                    future.set_result((task, prompt))  # type: ignore[arg-type]
            return  # still pending: its answer comes as an event
        self._prompt_waiters.pop(asked.id, None)
        if not future.done():
            future.set_exception(_question_lost(asked))

