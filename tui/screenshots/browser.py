"""The dashboard in a real Chromium through `taskdeck web`: what the browser tests and the phone
screenshot share (launching the system browser, reading and tapping the terminal).

The terminal is drawn on a canvas by xterm.js, so its text is not in the page. To read it,
the page's bundle is patched on its way to this browser only (never on the server) to keep
a reference to the terminal object; its buffer then gives every cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright, Route

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""System browsers tried, in order (Debian: `apt-get install chromium`)."""

LAUNCH_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
"""Headless and quiet: no calls home from a machine that may have no network."""

PHONE = (390, 844)
"""A phone's viewport in CSS pixels (about 41x46 cells with the page's viewport tag)."""

BUNDLE = "**/static/js/textual.js"
HOOK = ("this.terminal.open(e),",
        "this.terminal.open(e),(window.__deckTerms=window.__deckTerms||[]).push(this.terminal),")
"""Where the bundle opens its xterm terminal, and the same with the terminal kept for us."""

READ_SCREEN = """() => {
  const term = (window.__deckTerms || [])[0];
  if (!term) return null;
  const buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y), cells = [];
    for (let x = 0; x < term.cols; x++) {
      const cell = line.getCell(x);
      cells.push(cell ? cell.getChars() || (cell.getWidth() === 0 ? "" : " ") : " ");
    }
    rows.push(cells);
  }
  return {cols: term.cols, rows: rows};
}"""
"""The terminal's cells, row by row (a wide character's second cell is "")."""


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


async def launch(playwright: Playwright) -> Browser:
    """The system Chromium, headless (no browser download)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("no Chromium found: apt-get install chromium")
    return await playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS)


@dataclass
class Screen:
    """What the terminal in the page shows: a cell grid, and where it is on the page."""

    cells: list[list[str]]
    cols: int

    @property
    def lines(self) -> list[str]:
        return ["".join(row) for row in self.cells]

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines)

    def find(self, text: str) -> tuple[int, int] | None:
        """(column, row) of the first cell of `text`, or None."""
        for y, row in enumerate(self.cells):
            joined, columns = "", []
            for x, chars in enumerate(row):
                joined += chars
                columns += [x] * len(chars)
            at = joined.find(text)
            if at >= 0:
                return columns[at], y
        return None

    def row_of(self, text: str) -> int | None:
        found = self.find(text)
        return found[1] if found is not None else None


class Deck:
    """One browser tab on the web dashboard."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def screen(self) -> Screen | None:
        grid = await self.page.evaluate(READ_SCREEN)
        return Screen(grid["rows"], grid["cols"]) if grid else None

    async def wait_for(self, text: str, timeout: float = 20.0) -> Screen:
        """The screen once it shows `text`."""
        deadline = time.monotonic() + timeout
        while True:
            screen = await self.screen()
            if screen is not None and text in screen.text:
                return screen
            if time.monotonic() > deadline:
                shown = screen.text if screen is not None else "(no terminal)"
                raise AssertionError(f"the page never showed {text!r}; it shows:\n{shown}")
            await asyncio.sleep(0.05)

    async def point(self, column: int, row: int) -> tuple[float, float]:
        """Page coordinates of the middle of a cell."""
        box = await self.page.locator(".xterm-screen").bounding_box()
        assert box is not None
        screen = await self.screen()
        assert screen is not None
        width = box["width"] / screen.cols
        height = box["height"] / len(screen.cells)
        return box["x"] + (column + 0.5) * width, box["y"] + (row + 0.5) * height

    async def tap(self, text: str) -> None:
        """Tap (or click, without a touch screen) the middle of `text` on screen."""
        screen = await self.wait_for(text)
        found = screen.find(text)
        assert found is not None
        x, y = await self.point(found[0] + len(text) // 2, found[1])
        if await self._touch():
            await self.page.touchscreen.tap(x, y)
        else:
            await self.page.mouse.click(x, y)

    async def _touch(self) -> bool:
        return bool(await self.page.evaluate("() => navigator.maxTouchPoints > 0"))

    async def focus(self) -> None:
        """Give the terminal the keyboard (click its top-left corner: the tree's border)."""
        await self.page.locator(".xterm-screen").click(position={"x": 2, "y": 2})

    async def press(self, *keys: str) -> None:
        for key in keys:
            await self.page.keyboard.press(key)


async def _keep_terminal(route: Route) -> None:
    response = await route.fetch()
    body = (await response.text()).replace(*HOOK)
    await route.fulfill(response=response, body=body)


async def open_deck(browser: Browser, url: str, *, phone: bool = False,
                    size: tuple[int, int] = (1280, 800)) -> Deck:
    """A new tab (a fresh browser context: no cookies) on `url`, once the tree is drawn."""
    width, height = PHONE if phone else size
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        device_scale_factor=1, is_mobile=phone, has_touch=phone)
    page = await context.new_page()
    await page.route(BUNDLE, _keep_terminal)
    await page.goto(url)
    deck = Deck(page)
    await deck.wait_for("Tasks")
    return deck


async def close(deck: Deck) -> None:
    await deck.page.context.close()


# ------------------------------------------------------------- the phone screenshot


async def phone_shot(out: Path, *, browser: Browser | None = None) -> Path:
    """`out/phone.png`: the scripted scene on a phone, through `taskdeck web` and Chromium.

    The scene's clock ends now (the browser's dashboard measures elapsed times by the
    real clock). Device scale factor 1: higher ones crop xterm's canvas in a screenshot.
    """
    from playwright.async_api import async_playwright

    from tui.screenshots.scene import SCENE, FakeClock, Scene
    from tui.web.server import WebOptions

    played = sum(step.after for step in SCENE) + 42
    with tempfile.TemporaryDirectory(prefix="tdweb") as tmp:
        scene = Scene(Path(tmp) / "run", clock=FakeClock(time.time() - played))
        async with scene.running(), _web(WebOptions(runtime_dir=scene.runtime_dir,
                                                    port=0)) as url:
            async with contextlib.AsyncExitStack() as stack:
                if browser is None:
                    playwright = await stack.enter_async_context(async_playwright())
                    browser = await launch(playwright)
                    stack.push_async_callback(browser.close)
                deck = await open_deck(browser, url, phone=True)
                try:
                    await deck.wait_for("Inbox (3)")
                    await deck.focus()
                    await deck.press("b")
                    await deck.wait_for("a approve")
                    await deck.wait_for("reply with text")
                    await asyncio.sleep(0.5)  # xterm paints the last frame
                    path = out / "phone.png"
                    await deck.page.screenshot(path=str(path))
                finally:
                    await close(deck)
    return path


@contextlib.asynccontextmanager
async def _web(options) -> AsyncIterator[str]:
    """`taskdeck web` in this event loop; yields the URL to open (token included)."""
    from tui.web.server import serve

    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(options, stop=stop,
                                       on_ready=lambda url, _: ready.set_result(url)))
    try:
        yield await asyncio.wait_for(asyncio.shield(ready), 10)
    finally:
        stop.set()
        await server
