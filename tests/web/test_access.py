"""The access rules as a table: token, cookie, origin; no sockets."""

from __future__ import annotations

import pytest

from tui.web.access import COOKIE, Access, Verdict, cookie_for, new_token, origin_of, same

TOKEN = new_token()
ACCESS = Access(TOKEN, "http://127.0.0.1:8020")
GOOD = {COOKIE: cookie_for(TOKEN)}


@pytest.mark.parametrize(("query", "cookies", "origin", "websocket", "verdict"), [
    ({}, {}, None, False, Verdict.MISSING),
    ({"token": TOKEN}, {}, None, False, Verdict.ALLOW_AND_SET_COOKIE),
    ({"token": TOKEN[:-1]}, {}, None, False, Verdict.WRONG),
    ({"token": ""}, {}, None, False, Verdict.WRONG),
    ({"token": "ünïcode"}, {}, None, False, Verdict.WRONG),
    ({"token": "wrong"}, GOOD, None, False, Verdict.WRONG),  # a wrong token is never waved by
    ({}, GOOD, None, False, Verdict.ALLOW),
    ({}, {COOKIE: TOKEN}, None, False, Verdict.WRONG),  # the token is not the cookie
    ({}, {COOKIE: cookie_for(new_token())}, None, False, Verdict.WRONG),  # an old server's
    # The websocket: our cookie and our origin, nothing else.
    ({}, GOOD, "http://127.0.0.1:8020", True, Verdict.ALLOW),
    ({}, GOOD, "http://127.0.0.1:8020/", True, Verdict.ALLOW),
    ({}, {}, "http://127.0.0.1:8020", True, Verdict.MISSING),
    ({"token": TOKEN}, {}, "http://127.0.0.1:8020", True, Verdict.MISSING),
    ({}, GOOD, None, True, Verdict.BAD_ORIGIN),
    ({}, GOOD, "http://localhost:8020", True, Verdict.BAD_ORIGIN),
    ({}, GOOD, "http://evil.example", True, Verdict.BAD_ORIGIN),
    ({}, GOOD, "null", True, Verdict.BAD_ORIGIN),
])
def test_verdicts(query, cookies, origin, websocket, verdict) -> None:
    assert ACCESS.judge(query=query, cookies=cookies, origin=origin,
                        websocket=websocket) is verdict


def test_refusals_are_401_without_credentials_and_403_with_wrong_ones() -> None:
    assert Verdict.MISSING.status == 401
    assert {Verdict.WRONG.status, Verdict.BAD_ORIGIN.status} == {403}


def test_tokens_are_fresh_and_long() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 43 for t in tokens)
    assert cookie_for(TOKEN) != TOKEN and TOKEN not in cookie_for(TOKEN)


def test_same_takes_any_text() -> None:
    assert same("abc", "abc") and not same("abd", "abc") and not same("\udcff", "abc")


@pytest.mark.parametrize(("url", "origin"), [
    ("http://127.0.0.1:8020/", "http://127.0.0.1:8020"),
    ("https://deck.example.org/", "https://deck.example.org"),
    ("https://deck.example.org:443", "https://deck.example.org"),
    ("http://[::1]:8020", "http://[::1]:8020"),
])
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def test_the_server_and_the_notifier_load_no_dashboard() -> None:
    """`taskdeck web` runs no Textual itself (each tab's process does), and `serve --notify`
    loads apprise only when asked."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import sys, tui.web.server, core.notify, core.cli\n"
         "print('\\n'.join(sys.modules))"], capture_output=True, text=True, timeout=30,
        check=True)
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert not loaded & {"textual", "apprise", "playwright"}
