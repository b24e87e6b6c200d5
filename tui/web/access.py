"""Who may open the web dashboard: the token, the cookie it turns into, the Origin check.

No I/O here: the server asks `judge` about each request and answers with its verdict
before anything else happens (no page, no websocket, no dashboard process).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "taskdeck_web"
"""Name of the session cookie (HttpOnly, SameSite=Strict)."""

TOKEN_BYTES = 32
"""Random bytes in a token (43 URL-safe characters)."""


def new_token() -> str:
    """A fresh access token; `taskdeck web` makes one at every start."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def cookie_for(token: str) -> str:
    """The cookie value a valid token turns into.

    Derived, not the token itself: the cookie never repeats the text of the printed URL,
    and a new token (a restart) makes every old cookie worthless.
    """
    return hmac.new(token.encode(), b"taskdeck web session", hashlib.sha256).hexdigest()


def same(given: str, expected: str) -> bool:
    """Constant-time comparison; any text (not only ASCII) is safe to pass."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


class Verdict(enum.Enum):
    """What the server does with a request."""

    ALLOW = "allow"
    """A valid cookie: go on."""
    ALLOW_AND_SET_COOKIE = "allow and set cookie"
    """A valid token in the address: go on, and hand out the cookie."""
    MISSING = "missing"
    """Neither token nor cookie: 401."""
    WRONG = "wrong"
    """A token or cookie that is not ours: 403."""
    BAD_ORIGIN = "bad origin"
    """A websocket opened by a page of another origin (or none): 403."""

    @property
    def allowed(self) -> bool:
        return self in (Verdict.ALLOW, Verdict.ALLOW_AND_SET_COOKIE)

    @property
    def status(self) -> int:
        """The HTTP status of a refusal."""
        return 401 if self is Verdict.MISSING else 403


@dataclass(frozen=True)
class Access:
    """The rules for one server run: its token and the origin its pages are served from."""

    token: str
    origin: str
    """scheme://host[:port] of the public URL, as a browser sends it in `Origin`."""

    @property
    def cookie(self) -> str:
        return cookie_for(self.token)

    def judge(self, *, query: Mapping[str, str], cookies: Mapping[str, str],
              origin: str | None, websocket: bool) -> Verdict:
        """The verdict on one request.

        Args:
            query: The request's query parameters (a `token` may be among them).
            cookies: The request's cookies.
            origin: Its `Origin` header, if any.
            websocket: True for the websocket that starts a dashboard process: it needs
                the cookie (never a token in its address) and a page of our own origin.
        """
        if websocket:
            verdict = self._by_cookie(cookies)
            if verdict.allowed and (origin is None or not same(origin.rstrip("/"), self.origin)):
                return Verdict.BAD_ORIGIN
            return verdict
        token = query.get("token")
        if token is not None:
            return Verdict.ALLOW_AND_SET_COOKIE if same(token, self.token) else Verdict.WRONG
        return self._by_cookie(cookies)

    def _by_cookie(self, cookies: Mapping[str, str]) -> Verdict:
        value = cookies.get(COOKIE)
        if value is None:
            return Verdict.MISSING
        return Verdict.ALLOW if same(value, self.cookie) else Verdict.WRONG


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, as browsers write it in `Origin` (default ports left out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"
