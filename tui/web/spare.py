"""A dashboard process started while the page loads, for the websocket that follows.

The process's start (Python, Textual, the first snapshot) is most of the time from opening
the page to seeing the tree; the page's own loading (its script, the terminal) takes about
as long again. Starting the process when an authorised page is served runs the two side by
side. What the process draws before a browser takes it is held and replayed in order (its
first bytes switch on mouse reporting and the alternate screen: none may be lost).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

HELD_LIMIT = 4 * 1024 * 1024
"""Bytes of output held for a browser; a spare that draws more is not handed out."""

FIRST_FRAME = 80 * 24
"""Bytes of output by which the dashboard has drawn its first screen (one per cell at least).
Only then may it be resized: a resize sent while it starts raced its own first size, and
the dashboard stayed at the spare's 80x24 inside a larger browser terminal."""


class Sink:
    """The output of one dashboard process: held until a websocket takes it, then sent on."""

    def __init__(self) -> None:
        self.websocket: web.WebSocketResponse | None = None
        self.held: list[bytes | str] = []
        self.size = 0
        self.ended = False
        """The process closed its side before a browser came."""
        self.spoiled = False
        """More output than `HELD_LIMIT` came before a browser: never handed out."""
        self.written = 0
        self.drawn = asyncio.Event()
        """Set once the first screen is out (`FIRST_FRAME`)."""

    async def write_bytes(self, data: bytes) -> None:
        self.written += len(data)
        if self.written >= FIRST_FRAME:
            self.drawn.set()
        if self.websocket is not None:
            await self.websocket.send_bytes(data)
        else:
            self._hold(data)

    async def write_str(self, text: str) -> None:
        if self.websocket is not None:
            await self.websocket.send_str(text)
        else:
            self._hold(text)

    async def close(self) -> None:
        if self.websocket is not None:
            await self.websocket.close()
        else:
            self.ended = True

    def _hold(self, data: bytes | str) -> None:
        if self.spoiled:
            return
        self.size += len(data)
        if self.size > HELD_LIMIT:
            self.spoiled, self.held = True, []
        else:
            self.held.append(data)

    @property
    def usable(self) -> bool:
        return not (self.ended or self.spoiled)

    async def attach(self, websocket: web.WebSocketResponse) -> None:
        """Replay what was held, in order, then send everything on as it comes."""
        while self.held:  # output arriving during the replay joins the end of the queue
            data = self.held.pop(0)
            if isinstance(data, bytes):
                await websocket.send_bytes(data)
            else:
                await websocket.send_str(data)
        self.held, self.size = [], 0
        self.websocket = websocket
