"""The registry's event stream: one numbered event per change, told to every listener.

Listeners are called synchronously, in the same step as the change, so a snapshot
and the stream always agree; `Subscription` buffers the stream for async readers.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterator

from core.model import Body, Event

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
"""Called with every event, in seq order, inside the step that made it."""


class Feed:
    """Numbers events (`epoch`, gapless `seq`, a timestamp) and delivers them in order."""

    def __init__(self, epoch: int, now: Callable[[], float]) -> None:
        self.epoch = epoch
        self.seq = 0
        self._now = now
        self._listeners: tuple[Listener, ...] = ()
        """Replaced, never mutated: `emit` iterates it with no copy per event."""
        self._outbox: collections.deque[Event] = collections.deque()
        self._delivering = False

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every future event; returns a function that stops it."""
        self._listeners = (*self._listeners, listener)

        def stop() -> None:
            if listener in self._listeners:
                listeners = list(self._listeners)
                listeners.remove(listener)
                self._listeners = tuple(listeners)

        return stop

    def emit(self, body: Body) -> Event:
        """Number `body` as the next event and tell every listener of it."""
        self.seq += 1
        event = Event(epoch=self.epoch, seq=self.seq, ts=self._now(), body=body)
        self._outbox.append(event)
        if self._delivering:
            # A listener changed the registry while it was told of an earlier event:
            # the outer loop delivers this one after it, so every listener sees seq order.
            return event
        self._delivering = True
        try:
            while self._outbox:
                queued = self._outbox.popleft()
                for listener in self._listeners:
                    try:
                        listener(queued)
                    except Exception:  # a broken listener must not break the registry
                        log.exception("event listener failed on seq %d", queued.seq)
        finally:
            self._delivering = False
        return event


class Subscription:
    """Buffers every event from the moment it is made; iterate with `async for`."""

    def __init__(self, source: Feed) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._stop = source.listen(self._queue.put_nowait)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    def drain(self) -> Iterator[Event]:
        """The events buffered so far, without waiting."""
        while not self._queue.empty():
            yield self._queue.get_nowait()

    def close(self) -> None:
        """Stop receiving events."""
        self._stop()
