"""Ask a Codex binary which hooks it sees and trusts: `codex app-server`'s `hooks/list`.

Our trust hashes follow Codex's source; Codex is the judge. `taskdeck integrate codex
--verify` runs this after writing, so a Codex whose hashing changed is caught at once
rather than by hooks that silently never run.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SECONDS = 30.0
"""The longest we wait for the app-server (it answered in 0.3 s here)."""


class CheckFailed(Exception):
    """The Codex binary could not be asked (missing, crashed, or answered something else)."""


@dataclass(frozen=True)
class ListedHook:
    """One hook as Codex lists it."""

    key: str
    command: str
    trust: str
    """"trusted", "untrusted", "modified" or "managed"."""
    current_hash: str
    enabled: bool


def list_hooks(codex: Path | str, codex_home: Path, cwd: Path) -> list[ListedHook]:
    """The hooks Codex would load for a session in `cwd` with this CODEX_HOME.

    Raises:
        CheckFailed: with what went wrong, in one line.
    """
    env = {**os.environ, "CODEX_HOME": str(codex_home)}
    try:
        proc = subprocess.Popen(
            [str(codex), "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, cwd=cwd, env=env, text=True,
        )
    except OSError as exc:
        raise CheckFailed(f"cannot start {codex}: {exc.strerror or exc}") from None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        requests = [
            {"id": 0, "method": "initialize",
             "params": {"clientInfo": {"name": "taskdeck", "version": "1"}}},
            {"method": "initialized"},
            {"id": 1, "method": "hooks/list", "params": {"cwds": [str(cwd)]}},
        ]
        try:
            proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
            proc.stdin.flush()
        except OSError:  # it ended before reading: said below, by its exit
            pass
        reply = _reply(proc.stdout, 1, proc)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
    try:
        return [
            ListedHook(h["key"], h.get("command") or "", h["trustStatus"], h["currentHash"],
                       bool(h.get("enabled", True)))
            for entry in reply["result"]["data"] for h in entry["hooks"]
        ]
    except (KeyError, TypeError) as exc:
        raise CheckFailed(f"unexpected hooks/list answer (no {exc})") from None


def _reply(stdout: IO[str], wanted: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The response with this id; notifications and other replies are skipped."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError):  # closed under it once we are done
            for line in stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + SECONDS
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise CheckFailed(f"no answer from codex app-server in {SECONDS:g} s") from None
        if line is None:
            raise CheckFailed(f"codex app-server ended (exit {proc.wait()})")
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("id") == wanted:
            if "error" in message:
                raise CheckFailed(f"codex app-server: {message['error'].get('message')}")
            return message
