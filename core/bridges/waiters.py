"""Whether a hook still waits on a task's question: a lock file per task in the runtime dir.

A hook that asks a person holds a shared lock on its task's file for as long as it
waits; the kernel drops the lock when the process ends, however it ends (SIGKILL too).
A later hook of the same session that can take the lock exclusively knows that nobody
waits on the task's questions any more. Holding the exclusive lock while it closes them
keeps a new waiter from asking in between: its shared lock waits for the sweep to end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

DIR = "hooks"
"""The folder of lock files, inside the runtime dir (0700, like the runtime dir itself)."""


def lock_path(runtime_dir: Path, task_id: int) -> Path:
    """The lock file of one task's waiting hooks."""
    return runtime_dir / DIR / f"task-{task_id}.lock"


def _open(runtime_dir: Path, task_id: int) -> int:
    path = lock_path(runtime_dir, task_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def waiting(runtime_dir: Path, task_id: int) -> Iterator[None]:
    """Mark this process as waiting on the task's question while the block runs."""
    fd = _open(runtime_dir, task_id)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def unwaited(runtime_dir: Path, task_id: int) -> Iterator[bool]:
    """True when no hook waits on the task; while the block runs, none can start to."""
    fd = _open(runtime_dir, task_id)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def forget(runtime_dir: Path, task_id: int) -> None:
    """Remove an ended task's lock file (nobody asks on an ended task)."""
    with contextlib.suppress(OSError):
        lock_path(runtime_dir, task_id).unlink()
