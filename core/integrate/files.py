"""Reading and safely rewriting the agents' settings files: checked, backed up, atomic.

A settings file is the user's: we read it whole, refuse one we do not understand with one
line and no write, keep a timestamped copy before the first byte changes, and replace it
in one rename so an agent starting at that moment reads the old file or the new one,
never half of either. A symlinked file (dotfile managers) is written through the link.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 16 << 20
"""Settings files larger than this are refused: they are not what we think they are."""

NEW_FILE_MODE = 0o600
"""A settings file we create holds commands run on the user's behalf: the user's alone."""


class BadFile(Exception):
    """A settings file we will not touch: unreadable, not the format, or the wrong shape."""


@dataclass(frozen=True)
class Change:
    """One file's text before (None: no file yet) and after (None: leave it alone)."""

    path: Path
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.after is not None and self.after != self.before

    def diff(self) -> str:
        """The change as a unified diff, the way `--print` shows it."""
        if not self.changed:
            return ""
        old = [] if self.before is None else self.before.splitlines(keepends=True)
        label = str(self.path)
        return "".join(difflib.unified_diff(
            old, (self.after or "").splitlines(keepends=True),
            fromfile="/dev/null" if self.before is None else label, tofile=label,
        ))


def read_text(path: Path) -> str | None:
    """The file's text, or None when there is no file.

    Raises:
        BadFile: it cannot be read, is not a regular file, is too big or not UTF-8.
    """
    try:
        if path.exists() and not path.is_file():
            raise BadFile(f"{path}: not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadFile(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise BadFile(f"{path}: over {MAX_BYTES >> 20} MiB, not a settings file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not UTF-8 text") from None


def load_json_object(path: Path, text: str | None) -> dict[str, Any]:
    """The JSON object the file holds ({} for no file or an empty one), key order kept.

    Raises:
        BadFile: not JSON, or JSON that is not an object.
    """
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFile(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise BadFile(f"{path}: holds JSON {type(data).__name__}, not an object")
    return data


def dump_json(data: dict[str, Any], like: str | None) -> str:
    """JSON text for the data, indented the way the old text was (2 spaces by default)."""
    return json.dumps(data, indent=_indent_of(like), ensure_ascii=False) + "\n"


def _indent_of(text: str | None) -> int | str:
    for line in (text or "").splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 2


def write(change: Change, stamp: str | None = None) -> Path | None:
    """Write the change atomically, after a backup of the old file; returns the backup.

    Raises:
        BadFile: the file or its backup cannot be written.
    """
    if not change.changed:
        return None
    target = change.path.resolve() if change.path.is_symlink() else change.path
    backup = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if change.before is not None and target.exists():
            backup = _backup(target, stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
            mode = target.stat().st_mode & 0o7777
        else:
            mode = NEW_FILE_MODE
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(change.after or "")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BadFile(f"{target}: cannot write it ({exc.strerror or exc})") from None
    return backup


def _backup(target: Path, stamp: str) -> Path:
    """A copy of the file beside it (mode kept), never overwriting an earlier backup."""
    backup = target.with_name(f"{target.name}.taskdeck-{stamp}.bak")
    n = 1
    while backup.exists():
        n += 1
        backup = target.with_name(f"{target.name}.taskdeck-{stamp}-{n}.bak")
    shutil.copy2(target, backup)
    return backup
