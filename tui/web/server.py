"""`taskdeck web`: the dashboard in a browser, one `taskdeck tui` process per browser tab.

textual-serve does the serving (xterm.js page, websocket, app processes); it has no
authentication, so every route here passes `Access.judge` first: no valid token or
cookie, no page, no websocket and no process. The websocket also needs a page of our
own origin (a page elsewhere cannot drive the dashboard with the user's cookie). A cap on
sessions and an idle timeout bound what forgotten tabs cost. An authorised page starts its
dashboard process at once, while the browser loads the page (`tui.web.spare`). The token is printed once,
in the URL to open, and written to the 0600 `web.json`; no log line carries it (aiohttp's
access log, which would print the query string, is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from core.errors import BadRequest, InvalidState, Unavailable
from core.runtime import is_loopback, read_connection
from core.webfile import WebInfo, read_web_info, remove_web_info, write_web_info
from tui.web.access import COOKIE, Access, Verdict, new_token, origin_of
from tui.web.spare import Sink

log = logging.getLogger("taskdeck.web")

TEMPLATES = Path(__file__).parent / "templates"
"""Our page: textual-serve's, with a viewport for phones, no outside font, and the token
taken out of the address bar once the cookie is set."""

DEFAULT_PORT = 8020
DEFAULT_MAX_SESSIONS = 4
"""Browser sessions at once; each is a dashboard process (~60 MB)."""
DEFAULT_IDLE_MINUTES = 15.0
"""A session with no key, click or resize for this long is closed (its process ends)."""
SPARE_SIZE = (80, 24)
"""Cells a dashboard started with the page begins with; its websocket brings the real size."""
SPARE_SECONDS = 20.0
"""A dashboard started with the page and taken by no websocket within this is stopped."""
HEARTBEAT = 15.0
"""Seconds between websocket pings (less with a shorter idle timeout)."""
STOP_GRACE = 3.0
"""Seconds a dashboard process has to quit when its session ends, before it is killed."""

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
"""On every answer: nothing cached, the address (token) never sent on, and no other site
may frame the page (a framed answer button could be clicked by trickery)."""

REFUSED_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>taskdeck</title>
</head><body style="font-family: sans-serif; max-width: 36em; margin: 2em auto; padding: 0 1em">
<h1>{status}</h1><p>{why}</p><p>Open the address that <code>taskdeck web</code> printed (it
carries the access token), or, if this browser opened it before, <a href="/">try again</a>.</p>
</body></html>"""

REFUSALS = {
    Verdict.MISSING: "This dashboard needs its access token.",
    Verdict.WRONG: "That access token or session is not valid (the server may have restarted "
                   "with a new token).",
    Verdict.BAD_ORIGIN: "Only the dashboard's own page may open its session.",
}


@dataclass(frozen=True, kw_only=True)
class WebOptions:
    """How `taskdeck web` runs."""

    runtime_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public: bool = False
    """Allow an address other than loopback."""
    public_url: str | None = None
    """The address browsers use, when it is not http://HOST:PORT (a TLS proxy in front)."""
    max_sessions: int = DEFAULT_MAX_SESSIONS
    idle_seconds: float = DEFAULT_IDLE_MINUTES * 60
    token: str | None = None
    """A given token (tests); None makes a new one."""
    spare_seconds: float = SPARE_SECONDS
    """How long a dashboard started with the page waits for its websocket."""


def dashboard_command(runtime_dir: Path) -> str:
    """The shell command of one browser session: `taskdeck tui` on the same daemon, with this
    very interpreter (a bare `python` may be another one, without taskdeck)."""
    return " ".join(shlex.quote(part) for part in (
        sys.executable, "-m", "core.cli", "tui", "--runtime-dir", str(runtime_dir)))


class DeckServer(Server):
    """textual-serve's server with every route behind `Access`, a session cap and idle timeout."""

    def __init__(self, options: WebOptions, access: Access, public_url: str) -> None:
        super().__init__(dashboard_command(options.runtime_dir), host=options.host,
                         port=options.port, title="taskdeck", public_url=public_url,
                         templates_path=TEMPLATES)
        self.options = options
        self.access = access
        self.sessions: set[web.WebSocketResponse] = set()
        """Open browser sessions (each with its dashboard process)."""
        self._reserved = 0
        """Sessions counted against the cap before their websocket is ready."""
        self._spare: tuple[AppService, Sink] | None = None
        """A dashboard started with the page, waiting for its websocket (`tui.web.spare`)."""
        self._spare_timer: asyncio.TimerHandle | None = None

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: `run` prints the one line a person needs (textual-serve prints a banner)."""

    async def on_shutdown(self, app: web.Application) -> None:
        await self._drop_spare()
        for websocket in list(self.sessions):
            await websocket.close(message=b"server stopped")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """The page; an authorised one (the guard let it through) also starts its dashboard."""
        if self._spare is None and self._open() < self.options.max_sessions:
            sink = Sink()
            service = AppService(self.command, write_bytes=sink.write_bytes,
                                 write_str=sink.write_str, close=sink.close,
                                 download_manager=self.download_manager)
            self._spare = (service, sink)
            try:
                await service.start(*SPARE_SIZE)
            except OSError as exc:  # the page still loads; its websocket tries again
                log.warning("could not start a dashboard: %s", exc)
                self._spare = None
                return await super().handle_index(request)
            loop = asyncio.get_running_loop()
            self._spare_timer = loop.call_later(
                self.options.spare_seconds, lambda: loop.create_task(self._drop_spare(service)))
        return await super().handle_index(request)

    def _open(self) -> int:
        """Sessions open or opening, the spare included (what the cap counts)."""
        return len(self.sessions) + self._reserved + (self._spare is not None)

    def _take_spare(self) -> tuple[AppService, Sink] | None:
        """The spare dashboard, if it is still fit to hand out."""
        spare, self._spare = self._spare, None
        if self._spare_timer is not None:
            self._spare_timer.cancel()
        if spare is None:
            return None
        service, sink = spare
        process = service._process  # textual-serve keeps it private
        if not sink.usable or process is None or process.returncode is not None:
            asyncio.get_running_loop().create_task(_stop(service))
            return None
        return spare

    async def _drop_spare(self, only: AppService | None = None) -> None:
        """Stop the spare (if it is still `only`): no browser came for it in time."""
        if self._spare is None or (only is not None and self._spare[0] is not only):
            return
        service, _ = self._spare
        self._spare = None
        if self._spare_timer is not None:
            self._spare_timer.cancel()
        await _stop(service)

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        # By route, not by path spelling: only the websocket route starts a process.
        websocket = request.match_info.route.name == "websocket"
        verdict = self.access.judge(query=request.query, cookies=request.cookies,
                                    origin=request.headers.get("Origin"), websocket=websocket)
        if not verdict.allowed:
            log.warning("refused %s %s from %s: %s", request.method, request.path,
                        request.remote, verdict.value)
            return _refusal(verdict)
        if verdict is Verdict.ALLOW_AND_SET_COOKIE and self._elsewhere(request):
            # The cookie must belong to the host the page's websocket goes to.
            raise web.HTTPTemporaryRedirect(f"{self.public_url}{request.path_qs}",
                                            headers=SECURITY_HEADERS)
        response = await handler(request)
        if verdict is Verdict.ALLOW_AND_SET_COOKIE and not response.prepared:
            response.set_cookie(COOKIE, self.access.cookie, httponly=True, samesite="Strict",
                                path="/", secure=self.public_url.startswith("https:"))
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def _elsewhere(self, request: web.Request) -> bool:
        """A page asked for by another name of this server (`localhost` for `127.0.0.1`).

        Not behind a proxy (`--public-url`): there the Host header is the proxy's business.
        """
        if self.options.public_url is not None:
            return False
        return request.host != urlsplit(self.public_url).netloc

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser session: a dashboard process relayed over the websocket until the
        tab closes, the dashboard quits, the session idles out or the server stops."""
        if len(self.sessions) + self._reserved >= self.options.max_sessions:
            log.warning("refused a session: %d open already (--max-sessions)",
                        self.options.max_sessions)
            raise web.HTTPServiceUnavailable(
                text=f"taskdeck: {self.options.max_sessions} browser sessions are open already; "
                     "close one (or raise --max-sessions)")
        self._reserved += 1
        # Pings find a vanished browser (a phone that lost its network) without waiting for
        # the idle timeout; their pongs never count as activity (`_relay`).
        websocket = web.WebSocketResponse(heartbeat=min(HEARTBEAT, self.options.idle_seconds / 4))
        try:
            await websocket.prepare(request)
        finally:
            self._reserved -= 1
        width = _cells(request.query.get("width"), 80)
        height = _cells(request.query.get("height"), 24)
        self.sessions.add(websocket)
        log.info("session opened for %s (%d of at most %d)", request.remote, len(self.sessions),
                 self.options.max_sessions)
        why = "closed"
        spare = self._take_spare()
        if spare is not None:
            service, sink = spare
        else:
            service = AppService(self.command, write_bytes=websocket.send_bytes,
                                 write_str=websocket.send_str, close=websocket.close,
                                 download_manager=self.download_manager)
        try:
            if spare is not None:
                await sink.attach(websocket)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.drawn.wait(), SPARE_SECONDS)
                if (width, height) != SPARE_SIZE:  # the browser's own resize follows, after
                    await service.set_terminal_size(width, height)
            else:
                await service.start(width, height)
            why = await self._relay(websocket, service)
        finally:
            self.sessions.discard(websocket)
            await _stop(service)
            # Said before the browser hears of it: whoever sees the close can read why.
            log.info("session ended (%s); %d open", why, len(self.sessions))
            if not websocket.closed:
                await websocket.close(message=why.encode()[:120])
        return websocket

    async def _relay(self, websocket: web.WebSocketResponse, service: AppService) -> str:
        """Hand the browser's keys, clicks and resizes to the dashboard; returns why it ended.

        Anything malformed is dropped: a browser cannot crash the server.
        """
        idle = self.options.idle_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        while True:
            # One deadline around the whole receive: aiohttp's own receive timeout starts
            # again after every pong it swallows, so the heartbeat would keep a tab alive.
            try:
                async with asyncio.timeout_at(deadline):
                    message = await websocket.receive()
            except TimeoutError:
                return f"idle for {idle / 60:g} minutes"
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                WSMsgType.ERROR):
                return "closed"
            if message.type is not WSMsgType.TEXT:
                continue
            try:
                kind, *rest = json.loads(message.data)
            except (ValueError, TypeError):
                continue
            data = rest[0] if rest else None
            if kind != "ping":  # the page pings once, on its own, when it opens
                deadline = loop.time() + idle
            if kind == "stdin" and isinstance(data, str):
                await service.send_bytes(data.encode("utf-8", "replace"))
            elif kind == "resize" and isinstance(data, dict):
                await service.set_terminal_size(_cells(data.get("width"), 80),
                                                _cells(data.get("height"), 24))
            elif kind == "ping" and isinstance(data, str):
                await websocket.send_json(["pong", data[:32]])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()


def _cells(value: object, default: int) -> int:
    """A terminal dimension from the browser, kept within sane bounds."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default
    return min(max(number, 10), 500)


async def _stop(service: AppService) -> None:
    """Ask the dashboard to quit; kill it if it has not within `STOP_GRACE`."""
    try:
        await asyncio.wait_for(service.stop(), STOP_GRACE)
    except (TimeoutError, OSError):
        process = service._process  # textual-serve keeps it private; it has no kill
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _refusal(verdict: Verdict) -> web.Response:
    title = "401 Unauthorized" if verdict.status == 401 else "403 Forbidden"
    response = web.Response(status=verdict.status, content_type="text/html",
                            text=REFUSED_PAGE.format(status=title, why=REFUSALS[verdict]))
    response.headers.update(SECURITY_HEADERS)
    return response


def check_host(host: str, *, public: bool) -> None:
    """Loopback unless `--public` says otherwise.

    Raises:
        BadRequest: another address without `--public`.
    """
    if not is_loopback(host) and not public:
        raise BadRequest(
            f"{host} is not a loopback address: anyone who can reach it gets the login page. "
            "Prefer an SSH tunnel to 127.0.0.1 or a TLS proxy (see the README); --public "
            "allows it")


def public_url_for(host: str, port: int) -> str:
    """http://HOST:PORT as a browser on this machine writes it (a wildcard address becomes
    this machine's name)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(options: WebOptions, *,
                on_ready: Callable[[str, DeckServer], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGINT / SIGTERM when none is given).

    Args:
        on_ready: Called with the URL to open (token included) once the port is bound.
    """
    check_host(options.host, public=options.public)
    if options.max_sessions < 1:
        raise BadRequest("--max-sessions must be at least 1")
    if not 0 <= options.port <= 65535:
        raise BadRequest(f"--port must be 0 to 65535, got {options.port}")
    if options.public_url is not None and not options.public_url.startswith(
            ("http://", "https://")):
        raise BadRequest(f"--public-url must start with http:// or https://, "
                         f"got {options.public_url!r}")
    if not options.idle_seconds > 0:
        raise BadRequest("--idle-minutes must be positive")
    read_connection(options.runtime_dir)  # no daemon: say so now, not in every tab
    running = read_web_info(options.runtime_dir)
    if running is not None:
        raise InvalidState(f"a web dashboard already serves this daemon at {running.url} "
                           f"(pid {running.pid}; its URL with the token is in "
                           f"{options.runtime_dir}/web.json)")
    token = options.token or new_token()
    # Bind first: with --port 0 the address is known only then.
    server = DeckServer(options, Access(token, ""), "http://localhost")
    app = await server._make_app()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port)
        try:
            await site.start()
        except OSError as exc:
            raise Unavailable(f"cannot listen on {options.host}:{options.port}: "
                              f"{exc.strerror or exc}") from None
        port = runner.addresses[0][1]
        public_url = (options.public_url or public_url_for(options.host, port)).rstrip("/")
        server.public_url = public_url
        server.access = Access(token, origin_of(public_url))
        info = WebInfo(url=public_url + "/", token=token, pid=os.getpid(), started_at=time.time())
        write_web_info(options.runtime_dir, info)
        try:
            if on_ready is not None:
                on_ready(f"{public_url}/?token={token}", server)
            await _until_stopped(stop)
        finally:
            remove_web_info(options.runtime_dir, pid=info.pid)
    finally:
        await runner.cleanup()


async def _until_stopped(stop: asyncio.Event | None) -> None:
    if stop is not None:
        await stop.wait()
        return
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(args: Any) -> int:
    """`taskdeck web`: print the URL, serve until Ctrl-C."""
    from core.runtime import default_runtime_dir

    logging.basicConfig(level=logging.INFO, format="taskdeck web: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    options = WebOptions(
        runtime_dir=args.runtime_dir or default_runtime_dir(),
        host=args.host, port=args.port, public=args.public, public_url=args.public_url,
        max_sessions=args.max_sessions, idle_seconds=args.idle_minutes * 60)

    def ready(url: str, server: DeckServer) -> None:
        print(f"taskdeck: the dashboard is at {url}", flush=True)
        print(f"taskdeck: (a new token every start; also in {options.runtime_dir}/web.json; "
              f"at most {options.max_sessions} browser sessions, each closed after "
              f"{args.idle_minutes:g} idle minutes); Ctrl-C stops", file=sys.stderr, flush=True)

    asyncio.run(serve(options, on_ready=ready))
    return 0
