"""Notices when questions open: batching and rate rules (no I/O), then a real daemon posting to
a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from core.notify import Batcher, Waiting, compose, service_url
from tests.cli.conftest import Deck, one_line_error
from tests.support import until, until_sync
from tests.web.conftest import Web


def waiting(n: int) -> Waiting:
    return Waiting(prompt_id=n, task_id=100 + n, path=f"demo#1 › shell#{100 + n}",
                   question=f"Run step {n}?")


def test_a_burst_is_one_notice_and_notices_keep_their_interval() -> None:
    batcher = Batcher(window=2, interval=30)
    assert batcher.due_at() is None and batcher.take(0) == []
    for n in range(5):
        batcher.opened(waiting(n), now=0.1 * n)
    assert batcher.take(1.9) == []  # the window is still open
    assert [w.prompt_id for w in batcher.take(2.0)] == [0, 1, 2, 3, 4]
    batcher.opened(waiting(5), now=3)
    assert batcher.due_at() == 32  # 30 s after the last notice, not 2 s after it opened
    assert batcher.take(31) == []
    assert [w.prompt_id for w in batcher.take(32)] == [5]


def test_answered_before_the_notice_is_left_out_and_none_is_told_twice() -> None:
    batcher = Batcher(window=2, interval=30)
    batcher.opened(waiting(1), 0)
    batcher.opened(waiting(2), 0)
    batcher.closed(1)
    assert [w.prompt_id for w in batcher.take(2)] == [2]
    batcher.opened(waiting(2), 5)  # seen again after a resync
    batcher.opened(waiting(3), 5)
    batcher.closed(3)
    assert batcher.due_at() is None  # nothing left to tell


def test_a_flood_of_500_questions_over_ten_minutes_sends_at_most_21_notices() -> None:
    batcher = Batcher(window=2, interval=30)
    sent = []
    for second in range(600):
        batcher.opened(waiting(second), now=second)  # one question a second...
        if second % 3 == 0:
            batcher.closed(second)  # ... a third of them answered at once
        sent.append(batcher.take(second))
    notices = [batch for batch in sent if batch]
    assert len(notices) <= 600 / 30 + 1
    told = {w.prompt_id for batch in notices for w in batch}
    assert not any(n % 3 == 0 for n in told)


def test_the_notice_text() -> None:
    title, body = compose([waiting(1)], "http://127.0.0.1:8020/")
    assert title == "taskdeck: #101 asks"
    assert body == "#101 demo#1 › shell#101: Run step 1?\nAnswer at http://127.0.0.1:8020/"
    title, body = compose([waiting(n) for n in range(5)], None)
    assert title == "taskdeck: 5 questions waiting"
    assert "… and 2 more" in body and "taskdeck tui" in body


@pytest.mark.parametrize(("given", "apprise"), [
    ("http://127.0.0.1:9/hook", "json://127.0.0.1:9/hook"),
    ("HTTPS://hooks.example/x?y=1", "jsons://hooks.example/x?y=1"),
    ("ntfy://my-topic", "ntfy://my-topic"),
])
def test_service_urls(given: str, apprise: str) -> None:
    assert service_url(given) == apprise


# ------------------------------------------------------------ a real daemon and webhook

FLOOD_AGENTS = textwrap.dedent('''
    async def asker(ctx):
        return await ctx.ask(f"May I run step {ctx.description}?")

    async def flood(ctx):
        for n in range(int(ctx.description)):
            ctx.spawn("asker", str(n))
        return "spawned"
''')


class Receiver:
    """A webhook on loopback that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


@pytest.fixture
def notifying(tmp_path: Path) -> Iterator[Deck]:
    (tmp_path / "floodagents.py").write_text(FLOOD_AGENTS)
    deck = Deck(tmp_path)
    deck.env["PYTHONPATH"] = str(tmp_path)
    yield deck
    deck.stop()


async def test_a_question_reaches_the_webhook_linking_the_dashboard_without_its_token(
        notifying: Deck, receiver: Receiver, tmp_path: Path) -> None:
    deck = notifying
    await asyncio.to_thread(deck.serve, "--notify", receiver.url, "--notify-interval", "1")
    dashboard = await asyncio.to_thread(Web, deck, tmp_path)
    try:
        asker = deck.start("ask", "Deploy build 812?")
        await until(lambda: receiver.posts, timeout=15, what="a notice")
        [notice] = receiver.posts
        assert notice["title"].startswith("taskdeck: #") and notice["title"].endswith(" asks")
        assert "ask#" in notice["message"] and "Deploy build 812?" in notice["message"]
        assert f"Answer at {dashboard.base}/" in notice["message"]
        assert dashboard.token not in json.dumps(notice)
        asker.kill()
        asker.wait()
    finally:
        dashboard.stop()


@pytest.mark.timeout(90)
async def test_a_flood_of_500_questions_sends_a_bounded_number_of_notices(
        notifying: Deck, receiver: Receiver) -> None:
    deck = notifying
    await asyncio.to_thread(deck.serve, "--notify", receiver.url, "--notify-interval", "2",
                            "--max-concurrent", "600", "--agents", "floodagents:asker",
                            "--agents", "floodagents:flood")
    done = await asyncio.to_thread(deck.run, "submit", "flood", "500")
    assert done.returncode == 0, done.stderr

    def all_asking() -> bool:
        listed = deck.run("ls", "--json", "--status", "blocked", "--limit", "1000")
        return sum(t["blocked_on"] is not None for t in json.loads(listed.stdout)) == 500

    await asyncio.to_thread(until_sync, all_asking, timeout=60, what="500 questions")
    await until(lambda: sum(int(p["title"].split()[1]) if "questions" in p["title"] else 1
                            for p in receiver.posts) == 500, timeout=15, what="every question told")
    assert 1 <= len(receiver.posts) <= 10, [p["title"] for p in receiver.posts]
    assert all(p["message"].count("\n") <= 4 for p in receiver.posts)  # short, whatever the count


def test_a_bad_notify_url_stops_serve_with_one_line(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    result = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--no-journal",
                             "--notify", "nonsense://x"], env=deck.env, capture_output=True,
                            text=True, timeout=20, check=False)
    assert result.returncode == 2 and "--notify 'nonsense://x'" in one_line_error(result)
    assert not (deck.runtime_dir / "daemon.json").exists()
