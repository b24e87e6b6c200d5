"""A host's SIGINT / SIGTERM at any moment of `taskdeck mcp`'s life ends it cleanly.

Claude Code sends SIGINT, SIGTERM 100 ms later, then SIGKILL. The moments are made
well-defined by watching the server process in /proc: what its signals would do now
(`SigCgt` / `SigIgn` in its status) and which libraries it has loaded (its maps).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from core.mcp.ending import ENDING
from tests.mcp.conftest import McpDeck, until
from tests.mcp.test_disconnect import RawHost, closed_and_lost

SDK_LOADING = "_pydantic_core"
"""A compiled module the MCP SDK's import maps early on (our CLI does not load it)."""


def status(pid: int) -> dict[str, str] | None:
    """The process's /proc status fields; None once it has exited (a zombie has no handlers)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return None if fields["State"].startswith(("Z", "X")) else fields


def deadly(pid: int) -> list[str]:
    """The host's ending signals that would kill the process now (neither caught nor
    ignored): [] while it handles them all, or once it has exited."""
    fields = status(pid)
    if fields is None:
        return []
    handled = int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)
    return [sig.name for sig in ENDING if not handled >> (sig - 1) & 1]


def loaded(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        return False


def gone(server: subprocess.Popen[bytes]) -> bool:
    return status(server.pid) is None


async def test_a_sigterm_during_the_ending_finds_it_handling_signals(deck: McpDeck) -> None:
    """After the SIGINT the session ends: questions closed, the connection to the daemon,
    the interpreter. Until the process is gone, a SIGTERM must not find the default
    disposition (it did for the interpreter's last 0.1 s, when Claude Code's comes)."""
    host = RawHost(deck, "quitting")
    try:
        task = await host.ask(deck, "Still there?")
        host.server.send_signal(signal.SIGINT)
        found: list[str] = []

        def exposed_or_gone() -> bool:
            found[:] = deadly(host.server.pid)
            return bool(found) or gone(host.server)

        await until(exposed_or_gone, timeout=20, what="the server to end")
        if found:
            host.server.send_signal(signal.SIGTERM)  # what the host does then
        await host.ended()
        assert not found, f"{found} at the default disposition while the server ended"
    finally:
        host.kill()
    await closed_and_lost(deck, task, "quitting disconnected before anyone answered")


async def test_a_host_that_ends_it_while_the_sdk_loads_gets_a_clean_exit(deck: McpDeck) -> None:
    """Importing the SDK is most of the start-up: a host quitting then must not kill it,
    nor see a traceback; nothing was opened, nothing is left."""
    host = RawHost(deck, "early")
    try:
        await until(lambda: loaded(host.server.pid, SDK_LOADING) or gone(host.server),
                    timeout=20, what="the SDK to load")
        host.server.send_signal(signal.SIGINT)
        host.server.send_signal(signal.SIGTERM)
        await host.ended()
    finally:
        host.kill()
    assert not [t for t in await deck.ls() if t["agent"] == "early"]
