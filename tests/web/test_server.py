"""`taskdeck web` over real HTTP and websockets: who gets in, what it starts, what it prints."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cli.conftest import Deck, one_line_error
from tests.support import until
from tests.web.conftest import Web, wait_no_children
from tui.web.access import COOKIE, cookie_for


async def get(url: str, **options) -> tuple[int, aiohttp.ClientResponse, str]:
    async with aiohttp.ClientSession() as session, session.get(
            url, allow_redirects=False, **options) as response:
        return response.status, response, await response.text()


async def open_ws(web: Web, *, cookie: str | None, origin: str | None) -> int | None:
    """Try the dashboard's websocket; the handshake's refusal status, or None if it opened."""
    headers = {"Origin": origin} if origin is not None else {}
    cookies = {COOKIE: cookie} if cookie is not None else {}
    async with aiohttp.ClientSession(cookies=cookies) as session:
        try:
            ws = await session.ws_connect(f"{web.base}/ws?width=80&height=24", headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return None


async def test_no_token_wrong_token_and_every_route_refused_without_a_process(web: Web) -> None:
    assert (await get(f"{web.base}/"))[0] == 401
    assert (await get(f"{web.base}/?token=not-the-token"))[0] == 403
    assert (await get(f"{web.base}/?token={web.token}x"))[0] == 403
    assert (await get(f"{web.base}/static/js/textual.js"))[0] == 401
    assert (await get(f"{web.base}/ws"))[0] == 401
    status, _, page = await get(f"{web.base}/", cookies={COOKIE: web.token})
    assert status == 403 and "access token" in page  # the token is not a cookie
    # The websocket: no cookie, a wrong one, our cookie from another origin or none.
    good = cookie_for(web.token)
    assert await open_ws(web, cookie=None, origin=web.base) == 401
    assert await open_ws(web, cookie="0" * 64, origin=web.base) == 403
    assert await open_ws(web, cookie=good, origin="http://evil.example") == 403
    assert await open_ws(web, cookie=good, origin=None) == 403
    assert await open_ws(web, cookie=good, origin=web.base.replace("127.0.0.1", "localhost")) == 403
    assert web.children == []  # nothing was started for any of them


async def test_the_token_turns_into_a_strict_http_only_cookie(web: Web) -> None:
    status, response, page = await get(web.url)
    assert status == 200 and 'name="viewport"' in page and "width=device-width" in page
    cookie = response.cookies[COOKIE]
    assert cookie.value == cookie_for(web.token) != web.token
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "googleapis" not in page  # nothing leaves this machine
    # With the cookie alone the page and its files load; the token is not needed again.
    cookies = {COOKIE: cookie.value}
    assert (await get(f"{web.base}/", cookies=cookies))[0] == 200
    assert (await get(f"{web.base}/static/js/textual.js", cookies=cookies))[0] == 200


async def test_localhost_is_sent_on_to_the_address_the_cookie_belongs_to(web: Web) -> None:
    other = web.url.replace("127.0.0.1", "localhost")
    status, response, _ = await get(other)
    assert status == 307 and response.headers["Location"] == web.url
    assert COOKIE not in response.cookies  # no cookie for a host the websocket never uses
    assert (await get(f"{web.base.replace('127.0.0.1', 'localhost')}/"))[0] == 401


async def test_a_session_runs_a_dashboard_process_until_the_tab_closes(web: Web) -> None:
    async with aiohttp.ClientSession(cookies={COOKIE: cookie_for(web.token)}) as session:
        ws = await session.ws_connect(f"{web.base}/ws?width=60&height=30",
                                      headers={"Origin": web.base})
        screen = b""
        while b"Tasks" not in screen:  # the dashboard's tree box, drawn by the process
            message = await asyncio.wait_for(ws.receive(), 20)
            assert message.type is aiohttp.WSMsgType.BINARY, message
            screen += message.data
        assert len(web.children) >= 1
        await ws.send_str("not json")  # the server drops junk and goes on
        await ws.send_str(json.dumps(["resize", {"width": "x"}]))
        await ws.send_str(json.dumps(["ping", "42"]))
        while True:
            message = await asyncio.wait_for(ws.receive(), 10)
            if message.type is aiohttp.WSMsgType.TEXT:
                assert json.loads(message.data) == ["pong", "42"]
                break
        await ws.close()
    await asyncio.to_thread(wait_no_children, web)


async def test_the_token_is_never_logged_and_the_web_file_is_private(web: Web, deck: Deck) -> None:
    await get(f"{web.base}/?token={web.token}")
    await get(f"{web.base}/?token=wrong-{web.token}")
    log = web.logged()
    assert "refused GET /" in log and web.token not in log
    path = deck.runtime_dir / "web.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info["token"] == web.token and info["url"] == f"{web.base}/"
    assert info["pid"] == web.process.pid


@pytest.fixture
def own_deck(tmp_path: Path) -> Iterator[Deck]:
    """A daemon of the test's own, for a web server with other options."""
    with Deck(tmp_path).running() as deck:
        yield deck


async def test_session_cap_and_idle_timeout(own_deck: Deck, tmp_path: Path) -> None:
    deck = own_deck
    web = Web(deck, tmp_path, "--max-sessions", "1", "--idle-minutes", "0.02")  # 1.2 s
    try:
        async with aiohttp.ClientSession(cookies={COOKIE: cookie_for(web.token)}) as session:
            first = await session.ws_connect(f"{web.base}/ws", headers={"Origin": web.base})
            await until(lambda: web.children, timeout=10, what="the first session's process")
            await asyncio.wait_for(first.receive(), 20)  # its dashboard drew: all its processes run
            started = len(web.children)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{web.base}/ws", headers={"Origin": web.base})
            assert refused.value.status == 503
            assert len(web.children) == started  # no second process
            for _ in range(6):  # 2.4 s of activity, twice the idle timeout: kept open
                await first.send_str(json.dumps(["resize", {"width": 80, "height": 24}]))
                await asyncio.sleep(0.4)
            assert "session ended" not in web.logged() and len(web.children) == started
            # Nobody types: the server closes the session and its process ends, though the
            # websocket's heartbeat (every 0.3 s here) is answered all along.
            while not first.closed:
                await asyncio.wait_for(first.receive(), 20)
        await asyncio.to_thread(wait_no_children, web)
        assert "idle for 0.02 minutes" in web.logged()
    finally:
        web.stop()
    assert not (deck.runtime_dir / "web.json").exists()  # removed at stop


def test_stopping_the_server_ends_its_sessions(own_deck: Deck, tmp_path: Path) -> None:
    web = Web(own_deck, tmp_path)

    async def open_session() -> None:
        async with aiohttp.ClientSession(cookies={COOKIE: cookie_for(web.token)}) as session:
            await session.ws_connect(f"{web.base}/ws", headers={"Origin": web.base})
            await until(lambda: web.children, timeout=10, what="a dashboard process")
            web.stop()

    asyncio.run(open_session())
    assert web.process.returncode == 0 and web.children == []


def run_web(deck: Deck, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", "web", "--port", "0", *args],
                          env=deck.env, capture_output=True, text=True, timeout=20, check=False)


def test_another_address_needs_public(deck: Deck) -> None:
    result = run_web(deck, "--host", "0.0.0.0")
    assert result.returncode == 2 and "--public" in one_line_error(result)


@pytest.mark.parametrize(("args", "said"), [
    (("--port", "70000"), "--port must be 0 to 65535"),
    (("--max-sessions", "0"), "--max-sessions must be at least 1"),
    (("--public-url", "deck.example.org"), "--public-url must start with http"),
])
def test_bad_options_are_one_line(deck: Deck, args: tuple[str, ...], said: str) -> None:
    result = run_web(deck, *args)
    assert result.returncode == 2 and said in one_line_error(result)


def test_no_daemon_is_one_line(tmp_path: Path) -> None:
    lonely = Deck(tmp_path)
    result = run_web(lonely)
    assert result.returncode == 2 and "no daemon running" in one_line_error(result)


def test_one_server_per_daemon(deck: Deck, web: Web) -> None:
    result = run_web(deck)
    line = one_line_error(result)
    assert result.returncode == 2 and f"already serves this daemon at {web.base}/" in line
    assert web.token not in line
    assert json.loads((deck.runtime_dir / "web.json").read_text())["token"] == web.token


def test_a_busy_port_is_one_line(own_deck: Deck) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_web(own_deck, "--port", str(taken.getsockname()[1]))
    line = one_line_error(result)
    assert result.returncode == 2 and "cannot listen on" in line, line
    assert not (own_deck.runtime_dir / "web.json").exists()


async def test_the_page_starts_its_dashboard_and_the_websocket_takes_it(own_deck: Deck) -> None:
    """The dashboard starts with the page (side by side with the browser's loading); the
    websocket takes that process, replayed from its first byte; one nobody takes is stopped."""
    from tests.web.conftest import dashboards
    from tui.web.server import WebOptions, serve

    stop = asyncio.Event()
    urls: list[str] = []
    options = WebOptions(runtime_dir=own_deck.runtime_dir, port=0, spare_seconds=3)
    server = asyncio.create_task(serve(options, stop=stop, on_ready=lambda url, _: urls.append(url)))
    try:
        await until(lambda: urls, what="the server")
        base = urls[0].split("/?", 1)[0]
        def children() -> set[int]:  # the server runs in this process
            return dashboards(own_deck.runtime_dir)

        assert children() == set()
        status, response, _ = await get(urls[0])
        assert status == 200 and len(children()) >= 1  # started with the page
        spare = set(children())
        async with aiohttp.ClientSession(cookies={COOKIE: response.cookies[COOKIE].value}) as s:
            ws = await s.ws_connect(f"{base}/ws?width=80&height=24", headers={"Origin": base})
            screen = b""
            while b"Tasks" not in screen:
                message = await asyncio.wait_for(ws.receive(), 20)
                assert message.type is aiohttp.WSMsgType.BINARY, message
                screen += message.data
            assert b"\x1b[?1049h" in screen  # the alternate screen: held output replayed in full
            assert set(children()) == spare  # the same process, no second one
            await ws.close()
        await until(lambda: not children(), timeout=10, what="the session's process to end")
        await get(f"{base}/?token={urls[0].rsplit('=', 1)[1]}")
        assert children()  # another spare, for nobody this time...
        await until(lambda: not children(), timeout=10, what="the unclaimed spare to stop")
    finally:
        stop.set()
        await server
