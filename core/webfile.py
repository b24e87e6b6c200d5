"""The web dashboard's connection file: where `taskdeck web` listens, and its access token.

Kept apart from the daemon's `daemon.json` because the two run as separate processes and
end separately. The file is 0600 in the private runtime dir: whoever can read it could
open the dashboard anyway. The notifier reads only its address, never the token.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

from core.runtime import ensure_private_dir, write_private

WEB_FILE = "web.json"
"""Name of the web dashboard's connection file inside the runtime dir."""


class WebInfo(msgspec.Struct, kw_only=True):
    """What `taskdeck web` tells the other programs of this user."""

    url: str
    """The dashboard's address, without the token (what a notice may link to)."""
    token: str
    """The access token; a new one every start (a restart rotates it)."""
    pid: int
    started_at: float = 0.0


def web_path(runtime_dir: Path) -> Path:
    """Where the web connection file of this runtime dir is."""
    return Path(runtime_dir) / WEB_FILE


def write_web_info(runtime_dir: Path, info: WebInfo) -> Path:
    """Write the file (mode 0600, the dir made private first); returns its path."""
    ensure_private_dir(Path(runtime_dir))
    path = web_path(runtime_dir)
    write_private(path, msgspec.json.format(msgspec.json.encode(info)) + b"\n")
    return path


def read_web_info(runtime_dir: Path) -> WebInfo | None:
    """The running web dashboard of this runtime dir, or None (no file, unreadable, or
    its process is gone)."""
    try:
        info = msgspec.json.decode(web_path(runtime_dir).read_bytes(), type=WebInfo)
    except (OSError, msgspec.DecodeError):
        return None
    return info if _alive(info.pid) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_web_info(runtime_dir: Path, *, pid: int) -> None:
    """Remove the file if it still names this process (a newer server may have replaced it)."""
    path = web_path(runtime_dir)
    try:
        info = msgspec.json.decode(path.read_bytes(), type=WebInfo)
    except (OSError, msgspec.DecodeError):
        return
    if info.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
