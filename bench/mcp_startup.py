"""`taskdeck mcp` start-up: spawn to the `initialize` answer, vs the MCP SDK's bare server.

An MCP host waits only so long for its servers (`claude -p`: about 2 s), and importing the
SDK is most of the wait; this checks that ours adds little to it. Runs alternate A B A B
on the same machine, so a drift in its load hits both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Config, Result

TARGET = 1.2
"""At most 1.2x the bare SDK server's start-up."""

BARE_SERVER = """
import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

async def list_tools(ctx, params):
    import mcp.types as types
    return types.ListToolsResult(tools=[])

server = Server("bare", on_list_tools=list_tools)

async def main():
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())

anyio.run(main)
"""

INITIALIZE = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "bench", "version": "0"}},
}) + "\n"


def _answered_in(command: list[str]) -> float:
    """Seconds from spawning `command` to its answer to `initialize`."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(INITIALIZE.encode())
    process.stdin.flush()
    line = process.stdout.readline()
    took = time.perf_counter() - started
    process.stdin.close()
    process.wait(timeout=30)
    if b'"id":1' not in line:
        raise RuntimeError(f"no answer to initialize from {command[:3]}: {line[:200]!r}")
    return took


def run(config: Config) -> list[Result]:
    smoke = config.roundtrips < 100  # the smoke tests' sizes: it runs, the figure means little
    runs = 1 if smoke else 4 if config.quick else 10
    with tempfile.TemporaryDirectory() as empty:
        ours = [sys.executable, "-m", "core.cli", "mcp", "--runtime-dir", str(Path(empty))]
        bare = [sys.executable, "-c", BARE_SERVER]
        if not smoke:
            _answered_in(ours), _answered_in(bare)  # warm the file cache
        mine, theirs = [], []
        for _ in range(runs):
            mine.append(_answered_in(ours))
            theirs.append(_answered_in(bare))
    figure, baseline = statistics.median(mine), statistics.median(theirs)
    return [Result(
        bench="mcp_startup", name="taskdeck mcp: spawn to initialize answered", unit="s",
        figure=figure, baseline=baseline, baseline_name="the MCP SDK's bare low-level server",
        better="lower", target=f"ratio <= {TARGET}", met=figure <= TARGET * baseline,
        params={"runs": runs}, note="the SDK import is nearly all of both",
    )]
