"""Hook cost: the wall time of `taskdeck hook claude` as Claude Code runs it, p50/p90.

Claude Code starts the hook command through a shell for every event of every session,
one JSON object on stdin, and waits for it to exit. Measured the same way here: a new
`sh -c COMMAND` process per event against a real daemon started as `taskdeck serve` does
(journal on), for an observation event (PostToolUse) and for a decision that needs no
person (a PermissionRequest that a client answers as soon as it opens). Next to them, in
the same run and interleaved, the floor every hook pays: a shell running `true`, and a
bare `python -c pass` of the same interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench import Config, Result, percentile

TARGETS = {"observation": 0.100, "decision": 0.150}
"""Seconds, p50 wall (issue 12): an observation event, and a decision needing no person."""

DEAD_TARGET = 0.5
"""Seconds, p50 wall: a gated tool call against a killed daemon's stale connection file is
denied without waiting out a request timeout (2.5 s)."""

SESSION = "bench-session"
TASKDECK = str(Path(sys.executable).with_name("taskdeck"))
"""The installed entry point, as `taskdeck integrate` writes it into the settings."""


def _event(name: str, **more: object) -> bytes:
    return json.dumps({
        "session_id": SESSION, "transcript_path": "/tmp/t.jsonl", "cwd": "/work/project",
        "hook_event_name": name, "permission_mode": "default", **more,
    }).encode()


HOOK = f"{shlex.quote(TASKDECK)} hook claude --timeout 590"
CASES: dict[str, tuple[str, bytes]] = {
    "sh true": ("true", _event("PostToolUse")),
    "python -c pass": (f"{shlex.quote(sys.executable)} -c pass", _event("PostToolUse")),
    "observation": (HOOK, _event(
        "PostToolUse", tool_name="Bash", tool_input={"command": "ls"},
        tool_response={"stdout": "a\nb\n", "stderr": "", "interrupted": False},
        tool_use_id="toolu_1")),
    "decision": (HOOK, _event(
        "PermissionRequest", tool_name="Bash",
        tool_input={"command": "rm -rf build", "description": "clean"})),
}
"""What each timed process runs through `sh -c`, and its stdin."""


def run(config: Config) -> list[Result]:
    runs = config.hook_runs
    with tempfile.TemporaryDirectory(prefix="hk") as tmp:
        env = {**os.environ, "TASKDECK_RUNTIME_DIR": str(Path(tmp) / "run"),
               "TASKDECK_STATE_DIR": str(Path(tmp) / "state")}
        with _daemon(env, Path(tmp) / "journal.db"), _answer_every_prompt(env):
            _shell(*CASES["observation"][:1], _event("UserPromptSubmit", prompt="bench"), env)
            times = _measure(runs, env)
        dead = _against_a_killed_daemon(min(runs, 10), env, Path(tmp) / "journal.db")
    return [*_results(times, runs), _dead_result(dead, times)]


def _against_a_killed_daemon(runs: int, env: dict[str, str], journal: Path) -> list[float]:
    """A gated PreToolUse hook after `kill -9` of the daemon: its connection file stays."""
    with _daemon(env, journal, kill=True):
        pass
    gated = f"{HOOK} --gate Bash"
    stdin = _event("PreToolUse", tool_name="Bash", tool_input={"command": "ls"},
                   tool_use_id="toolu_2")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = _shell(gated, stdin, env)
        times.append(time.perf_counter() - started)
        if b'"deny"' not in out:
            raise RuntimeError(f"the hook did not deny against a killed daemon: {out[:200]!r}")
    return times


def _dead_result(dead: list[float], times: dict[str, list[float]]) -> Result:
    figure = percentile(dead, 50)
    return Result(
        bench="hook_cost", name="hook claude, gated PreToolUse, daemon killed (-9) p50",
        unit="s", figure=figure, baseline=percentile(times["python -c pass"], 50),
        baseline_name="python -c pass (same interpreter, via sh)", better="lower",
        target=f"p50 <= {DEAD_TARGET * 1000:g} ms", met=figure <= DEAD_TARGET,
        params={"runs": len(dead)},
        note="denied at once: the file's pid has exited and its socket refuses",
    )


def _measure(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Each case once per round, rounds interleaved so noise falls on all alike."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    _shell(*CASES["observation"], env)  # warm the page cache for the first round
    for _ in range(runs):
        for name, (command, stdin) in CASES.items():
            started = time.perf_counter()
            out = _shell(command, stdin, env)
            times[name].append(time.perf_counter() - started)
            if name == "decision" and b'"allow"' not in out:
                raise RuntimeError(f"the decision hook did not allow: {out[:200]!r}")
    return times


def _shell(command: str, stdin: bytes, env: dict[str, str]) -> bytes:
    result = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True,
                            env=env, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed: {result.stderr.decode()[-300:]}")
    return result.stdout


def _results(times: dict[str, list[float]], runs: int) -> list[Result]:
    results = []
    labels = {"observation": "hook claude, PostToolUse (observation)",
              "decision": "hook claude, PermissionRequest answered at once (decision)"}
    floor = {q: percentile(times["sh true"], q) for q in (50, 90)}
    for q in (50, 90):
        base = percentile(times["python -c pass"], q)
        for name, label in labels.items():
            figure = percentile(times[name], q)
            target = TARGETS[name] if q == 50 else None
            results.append(Result(
                bench="hook_cost", name=f"{label} p{q}", unit="s", figure=figure,
                baseline=base, baseline_name="python -c pass (same interpreter, via sh)",
                better="lower",
                target=f"p50 <= {target * 1000:g} ms" if target else None,
                met=figure <= target if target else None,
                params={"runs": runs, "journal": True},
                note=f"a shell `true` hook: {floor[q] * 1000:.1f} ms",
            ))
        results.append(Result(
            bench="hook_cost", name=f"python -c pass p{q}", unit="s", figure=base,
            baseline=floor[q], baseline_name="sh -c true", better="lower",
            params={"runs": runs}, note="the interpreter's start, which every Python hook pays",
        ))
    return results


@contextlib.contextmanager
def _daemon(env: dict[str, str], journal: Path, *, kill: bool = False) -> Iterator[None]:
    """`taskdeck serve` with its journal, as a user starts it; `kill` ends it with SIGKILL,
    which leaves its connection file behind."""
    process = subprocess.Popen([TASKDECK, "serve", "--journal", str(journal)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        connection = Path(env["TASKDECK_RUNTIME_DIR"]) / "daemon.json"
        deadline = time.monotonic() + 30
        while not connection.exists() or _pid_in(connection) != process.pid:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"taskdeck serve did not start: {process.stderr.read()[-300:]!r}")
            time.sleep(0.01)
        yield
    finally:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pid_in(connection: Path) -> int | None:
    """The daemon pid a connection file names (None while it is being written)."""
    try:
        return json.loads(connection.read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


@contextlib.contextmanager
def _answer_every_prompt(env: dict[str, str]) -> Iterator[None]:
    """A client that approves each prompt the moment it opens (a policy, not a person)."""
    from core.client import Client

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        answering: set[asyncio.Task] = set()
        async with Client(env["TASKDECK_RUNTIME_DIR"]) as client:
            def on_change(changes) -> None:
                for prompt in changes.opened:
                    task = loop.create_task(client.answer(prompt.id, prompt.choices[0], by="bench"))
                    answering.add(task)
                    task.add_done_callback(answering.discard)

            await client.start_mirror(on_change)
            await client.wait_synced()
            ready.set()
            await stop.wait()
            # A hook that gave up leaves its prompt closed: that answer's error is no news.
            await asyncio.gather(*answering, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the answering client did not connect")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
