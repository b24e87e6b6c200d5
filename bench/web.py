"""The dashboard in a browser: page load to first paint, and key to screen, next to the same
in `taskdeck tui` on a terminal.

Everything is real: a daemon process, `taskdeck web` (each tab a `taskdeck tui` process),
and the system Chromium driven by Playwright over loopback. The page's xterm terminal is
kept by a patched copy of the page's bundle (`tui.screenshots.browser`), and every time is
taken inside the page with `performance.now()`:

- first paint: from navigation start to the first frame xterm renders holding the tree's
  title "Tasks" (the page, its script, the websocket and the dashboard process starting),
  the best of `LOADS` fresh tabs;
- key to screen: a key handed to xterm as typed input (`term.input`) until the first frame
  xterm renders that shows its effect: `k` onto a task that asks a question, until the
  prompt bar's "reply with text" is drawn (`j` onto it; then `k` away, unmeasured).

The baseline is `taskdeck tui` on a pseudo-terminal of the same size (130x40): process
start until "Tasks" is written, and a key written to the terminal until the bytes that
draw "reply with text" come back. It leaves out a terminal emulator's own drawing, which
the browser's figure includes (xterm.js on a canvas).

Bytes per key: what `taskdeck tui` writes for a `j` onto the asking row and a `k` off it
(until it falls quiet), next to a full redraw of the same screen (the terminal resized
away and back): a move that relayouts the screen writes about as much as a full redraw.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench import Config, Result, percentile

FIRST_PAINT_TARGET = 2.0
KEY_P99_TARGET = 0.100
LOADS = 3
"""Page loads (and terminal starts) timed; the best is kept: noise only ever slows."""
SIZE = (130, 40)
"""Terminal cells of the baseline; the browser window is sized to about the same."""
WINDOW = (1300, 800)
ASKS = "echo bench-asks"
"""The asking task's command; `k` lands on it, `j` leaves it."""
BAR = "reply with text"
"""In the prompt bar only while the highlighted task asks."""

WATCH = """
window.__deckOpened = term => {
  const text = () => {
    const b = term.buffer.active, out = [];
    for (let y = 0; y < term.rows; y++) out.push(b.getLine(b.viewportY + y).translateToString(true));
    return out.join("\\n");
  };
  window.__deckText = text;
  term.onRender(() => {
    if (window.__firstPaint === undefined && text().includes("Tasks"))
      window.__firstPaint = performance.now();
  });
  window.__deckKey = (key, needle, present) => new Promise(resolve => {
    const started = performance.now();
    const sub = term.onRender(() => {
      if (text().includes(needle) === present) { sub.dispose(); resolve(performance.now() - started); }
    });
    term.input(key, true);
  });
};
"""
"""Installed before the page loads; the patched bundle calls `__deckOpened(terminal)`."""


def _daemon(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {**os.environ, "TASKDECK_RUNTIME_DIR": str(tmp / "rt"),
           "TASKDECK_STATE_DIR": str(tmp / "st")}
    daemon = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--no-journal"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (tmp / "rt" / "daemon.json").exists():
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise RuntimeError("the daemon did not start")
        time.sleep(0.02)
    return daemon, env


def _taskdeck(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], env=env,
                          capture_output=True, text=True, timeout=20, check=True)
    return done.stdout


def _two_tasks(env: dict[str, str]) -> None:
    """A running task, then one asking below it (oldest first): `j` goes down onto the asker,
    `k` back up to the first row, where the dashboard starts."""
    _taskdeck(env, "submit", "shell", "sleep 600")
    _wait_asking(env, 1)
    _taskdeck(env, "answer", "1", "approve")
    _taskdeck(env, "submit", "shell", ASKS)
    _wait_asking(env, 2)


def _wait_asking(env: dict[str, str], task_id: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = json.loads(_taskdeck(env, "ls", "--json"))
        if any(t["id"] == task_id and t["blocked_on"] for t in tasks):
            return
        time.sleep(0.05)
    raise RuntimeError(f"task {task_id} never asked")


# ---------------------------------------------------------------- the browser


async def _browser_figures(env: dict[str, str], keys: int,
                           loads: int) -> tuple[float, list[float]]:
    from playwright.async_api import async_playwright

    from tui.screenshots.browser import BUNDLE, HOOK, launch

    web = subprocess.Popen([sys.executable, "-m", "core.cli", "web", "--port", "0"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert web.stdout is not None
        url = web.stdout.readline().split("the dashboard is at ", 1)[1].strip()
        hook = HOOK[1].replace(
            "this.terminal.open(e),",
            "this.terminal.open(e),window.__deckOpened&&window.__deckOpened(this.terminal),")

        async def patched(route) -> None:
            response = await route.fetch()
            await route.fulfill(response=response,
                                body=(await response.text()).replace(HOOK[0], hook))

        async with async_playwright() as playwright:
            browser = await launch(playwright)
            try:
                firsts = []
                for _ in range(loads):  # a fresh tab each time: no cookie, nothing cached
                    if firsts:
                        await page.context.close()
                    page = await (await browser.new_context(
                        viewport={"width": WINDOW[0], "height": WINDOW[1]},
                        device_scale_factor=1)).new_page()
                    await page.add_init_script(WATCH)
                    await page.route(BUNDLE, patched)
                    await page.goto(url)
                    await page.wait_for_function("window.__firstPaint !== undefined",
                                                 timeout=20_000)
                    firsts.append(await page.evaluate("window.__firstPaint") / 1000)
                # Keys once the dashboard has the window's size (the detail pane shows).
                await page.wait_for_function(
                    f"window.__deckText().includes({ASKS!r}) && "
                    "window.__deckText().includes('Detail')", timeout=20_000)
                times = []
                for _ in range(keys):
                    times.append(await page.evaluate(f"window.__deckKey('j', {BAR!r}, true)"))
                    await page.evaluate(f"window.__deckKey('k', {BAR!r}, false)")
                return min(firsts), [t / 1000 for t in times]
            finally:
                await browser.close()
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)


# ---------------------------------------------------------------- the terminal


class _Terminal:
    """`taskdeck tui` on a pseudo-terminal: bytes in, bytes out, no emulation."""

    def __init__(self, env: dict[str, str]) -> None:
        self.read = 0
        """Bytes read by the last `key` (or `until`)."""
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "tui"], stdin=slave, stdout=slave, stderr=slave,
            env={**env, "TERM": "xterm-256color", "COLORTERM": "truecolor"},
            start_new_session=True)
        os.close(slave)

    def until(self, needle: bytes, timeout: float = 20.0) -> float:
        """perf_counter when output holding `needle` arrived (output before is dropped);
        `read` counts the bytes read."""
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                chunk = os.read(self.master, 1 << 16)
                self.read += len(chunk)
                seen += chunk
                if needle in seen:
                    return time.perf_counter()
                seen = seen[-len(needle):]
        raise RuntimeError(f"the terminal never showed {needle!r}")

    def drain(self, quiet: float = 0.05) -> int:
        """Read until nothing comes for `quiet` seconds; returns the bytes read."""
        count = 0
        while select.select([self.master], [], [], quiet)[0]:
            count += len(os.read(self.master, 1 << 16))
        return count

    def key(self, key: str, needle: bytes) -> float:
        started = time.perf_counter()
        self.read = 0
        os.write(self.master, key.encode())
        return self.until(needle) - started

    def resize(self, columns: int) -> None:
        """Set the terminal's width and tell the dashboard (it is no controlling terminal)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], columns, 0, 0))
        os.killpg(self.process.pid, signal.SIGWINCH)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)
        os.close(self.master)


def _terminal_figures(env: dict[str, str], keys: int,
                      loads: int) -> tuple[float, list[float], list[int], int]:
    """First paint, key to screen of each `j`, bytes of each `j` and `k` pair, and the
    bytes of a full redraw."""
    firsts = []
    for _ in range(loads - 1):
        term = _Terminal(env)
        try:
            firsts.append(term.until(b"Tasks") - term.started)
        finally:
            term.close()
    term = _Terminal(env)
    try:
        first = min([*firsts, term.until(b"Tasks") - term.started])
        term.until(ASKS.encode())
        time.sleep(1.0)  # the detail pane's first fetch and the tick settle
        term.drain()
        times, written = [], []
        for _ in range(keys):
            times.append(term.key("j", BAR.encode()))
            onto = term.read + term.drain()
            os.write(term.master, b"k")
            written.append(onto + term.drain())  # `k` drawn: its frame has no marker
        term.resize(SIZE[0] - 1)
        term.drain(0.3)
        term.resize(SIZE[0])
        return first, times, written, term.drain(0.3)
    finally:
        term.close()


def run(config: Config) -> list[Result]:
    keys = max(3, config.dashboard_keys // 2)
    loads = LOADS if keys >= 10 else 1  # smoke sizes: one of each
    with tempfile.TemporaryDirectory(prefix="tdwb") as tmp:
        daemon, env = _daemon(Path(tmp))
        try:
            _two_tasks(env)
            term_first, term_keys, term_bytes, full_redraw = _terminal_figures(env, keys, loads)
            web_first, web_keys = asyncio.run(_browser_figures(env, keys, loads))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=15)
    params = {"keys": keys, "loads": loads, "cells": f"{SIZE[0]}x{SIZE[1]}", "window": f"{WINDOW[0]}x{WINDOW[1]}",
              "load average": round(os.getloadavg()[0], 1)}
    tui = "taskdeck tui on a pty"
    return [
        Result("web", "page load to first paint (tree drawn)", "s", web_first, term_first,
               f"{tui}: start to first paint", better="lower",
               target=f"<= {FIRST_PAINT_TARGET:g} s", met=web_first <= FIRST_PAINT_TARGET,
               params=params),
        Result("web", "key to screen p50 (prompt bar drawn)", "s",
               percentile(web_keys, 50), percentile(term_keys, 50), f"{tui}: key to bytes",
               better="lower", params=params),
        Result("web", "key to screen p99 (prompt bar drawn)", "s",
               percentile(web_keys, 99), percentile(term_keys, 99), f"{tui}: key to bytes",
               better="lower", target=f"<= {KEY_P99_TARGET * 1000:g} ms",
               met=percentile(web_keys, 99) <= KEY_P99_TARGET, params=params),
        Result("web", "bytes written per key onto or off an asking row (taskdeck tui)", "B",
               percentile(term_bytes, 50) / 2, full_redraw, "a full redraw of the screen",
               better="lower", params=params),
    ]
