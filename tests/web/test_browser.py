"""The web dashboard in a real Chromium (the system's, driven by Playwright): open it with the
token, answer by keys and by tapping, the phone layout, refusals that start nothing."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.cli.conftest import Deck
from tests.support import until
from tests.web.conftest import Web
from tui.screenshots.browser import PHONE, chromium_path, close, launch, open_deck, phone_shot

if chromium_path() is None and not os.environ.get("CI"):
    pytest.skip("no Chromium here (apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[object]:
    """One Chromium for the module (about 0.6 s to launch)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


def asking(deck: Deck, command: str) -> int:
    """Submit a shell task (it asks leave to run `command`); its id once it asks."""
    result = deck.run("submit", "shell", command)
    assert result.returncode == 0, result.stderr
    return deck.blocked_task(command)["id"]


def decided(deck: Deck, task_id: int) -> dict:
    """The task's answered prompt, as `taskdeck show --json` tells it."""
    shown = deck.run("show", str(task_id), "--json")
    assert shown.returncode == 0, shown.stderr
    prompts = [p for p in json.loads(shown.stdout)["prompts"] if p["state"] == "answered"]
    assert prompts, shown.stdout
    return prompts[-1]


async def test_the_token_opens_the_tree_and_leaves_the_address_bar(
        browser, deck: Deck, web: Web) -> None:
    task_id = asking(deck, "echo from-the-browser")
    tab = await open_deck(browser, web.url)
    try:
        await tab.wait_for("echo from-the-browser")
        screen = await tab.wait_for("Inbox (1)")  # at the browser's size, not the first 80x24
        assert f"#{task_id}" in screen.text and "echo from-the-browser" in screen.text
        assert "token" not in tab.page.url  # the cookie carries it from now on
        assert screen.cols >= 100  # a desktop window: the wide layout
    finally:
        await close(tab)
        deck.run("abort", str(task_id))


async def test_answering_by_keys_reaches_the_daemon(browser, deck: Deck, web: Web) -> None:
    task_id = asking(deck, "echo approve-by-keys")
    tab = await open_deck(browser, web.url)
    try:
        await tab.wait_for("echo approve-by-keys")
        await tab.focus()
        await tab.press("b")
        await tab.wait_for("reply with text")
        await tab.press("a")
        await tab.wait_for(f"approved #{task_id}")
        prompt = decided(deck, task_id)
        assert prompt["answer"] == "approve"
        assert prompt["answered_by"].startswith("tui:")  # the browser's dashboard answered
    finally:
        await close(tab)


async def test_a_phone_gets_one_column_and_answers_by_tapping(
        browser, deck: Deck, web: Web) -> None:
    task_id = asking(deck, "echo deny-by-tapping")
    tab = await open_deck(browser, web.url, phone=True)
    try:
        await tab.wait_for("echo deny")
        screen = await tab.wait_for("Inbox (1)")  # one column: the inbox shows at this width
        assert screen.cols < 70  # the page's viewport tag: a phone-wide terminal
        inbox, tree = screen.row_of("Inbox (1)"), screen.row_of("Tasks")
        assert inbox is not None and tree is not None and inbox < tree  # inbox first
        await tab.tap("Inbox (1)")  # the keyboard goes to the terminal, as a first tap does
        await tab.press("b")
        await tab.tap("d deny")
        await tab.wait_for("esc cancel")
        await tab.page.keyboard.type("not from a phone")
        await tab.tap("⏎ send")
        await tab.wait_for(f"denied #{task_id}")
        prompt = decided(deck, task_id)
        assert (prompt["answer"], prompt["reason"]) == ("deny", "not from a phone")
        assert prompt["answered_by"].startswith("tui:")
    finally:
        await close(tab)


async def test_no_token_or_a_wrong_one_is_refused_and_starts_nothing(
        browser, web: Web) -> None:
    await until(lambda: not web.children, timeout=10, what="earlier tabs' processes to end")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        for url, status in ((f"{web.base}/", 401), (f"{web.base}/?token=guess", 403)):
            response = await page.goto(url)
            assert response is not None and response.status == status
            assert "access token" in await page.content()
        # A script on a page of the server's origin but with no cookie: the websocket fails.
        opened = await page.evaluate(f"""() => new Promise(done => {{
            const ws = new WebSocket("{web.base.replace('http', 'ws')}/ws");
            ws.onopen = () => done(true); ws.onerror = () => done(false);
        }})""")
        assert opened is False
        assert web.children == []
    finally:
        await context.close()


async def test_the_phone_screenshot(browser, tmp_path: Path) -> None:
    """What `python -m tui.screenshots --browser` saves in screenshots/, made here in a temp dir."""
    path = await phone_shot(tmp_path, browser=browser)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    size = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
    assert size == PHONE
    assert len(png) > 20_000  # a drawn dashboard, not a blank page (that is ~3 kB)
