"""A real daemon and a real `taskdeck web` on a free loopback port, and ways to look at them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cli.conftest import Deck
from tests.support import until_sync


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children...), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":  # a zombie is already gone
            parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def dashboards(runtime_dir: Path) -> set[int]:
    """Dashboard processes (and their shells) below this test process for that daemon."""
    found = set()
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b" tui --runtime-dir " + str(runtime_dir).encode() in command:
            found.add(pid)
    return found


class Web:
    """A `taskdeck web` process serving the dashboard of `deck`'s daemon."""

    def __init__(self, deck: Deck, tmp: Path, *extra: str) -> None:
        self.deck = deck
        self.log = tmp / f"web-{os.getpid()}-{id(self)}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "web", "--port", "0", *extra],
                env=deck.env, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "the dashboard is at " in line, line + self.log.read_text()
        self.url = line.split("the dashboard is at ", 1)[1].strip()
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = parse_qs(parts.query)["token"][0]

    @property
    def children(self) -> list[int]:
        """Dashboard processes (and their shells) started by the server."""
        return descendants(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    def logged(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def deck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deck]:
    """One daemon for the module (each start costs about a second)."""
    with Deck(tmp_path_factory.mktemp("web")).running() as deck:
        yield deck


@pytest.fixture(scope="module")
def web(deck: Deck, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    server = Web(deck, tmp_path_factory.mktemp("weblog"))
    try:
        yield server
    finally:
        server.stop()


def wait_no_children(web: Web, timeout: float = 10) -> None:
    until_sync(lambda: not web.children, timeout=timeout, what="the dashboard processes to end")
