"""The journal's sync thread: flushes the WAL to disk while the command thread serves on.

Why: one fsync of a batch's commit takes 0.1-4 ms on a shared disk, and twenty
concurrent answers spend more time waiting for it than being handled
(docs/BENCHMARKS.md, "Durable answers: pipelined sync"). So the command thread commits
a batch's decisions without a sync, keeps the batch's replies, events and wake-ups
back (core/server.py), asks this thread for a sync and takes the next batch. When the
sync returns, this thread writes a byte to a pipe the command thread polls beside its
socket: only the command thread may use that socket, so it sends what the sync covered.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

Sync = Callable[[], tuple[int, "str | None"]]
"""Flushes the journal: (the last commit covered, None), or (0, why it failed)."""


class Syncer:
    """Runs `sync` on its own thread each time a commit it has not covered is wanted.

    Args:
        sync: flushes the journal (`CommandService.sync`).
        wake: the write end of a pipe, written (non-blocking) after each sync.
    """

    def __init__(self, sync: Sync, wake: int) -> None:
        self.synced = 0
        """Every commit up to this one is on disk."""
        self.error: str | None = None
        """Why a sync failed; from then on nothing is synced (a later flush could report
        success for pages the kernel dropped), so nothing waiting is recorded."""
        self._sync = sync
        self._wake = wake
        self._wanted = 0
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="taskdeck-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def want(self, commit: int) -> None:
        """Have `commit` (and every one before it) synced soon; called once it returned."""
        with self._changed:
            if commit > self._wanted:
                self._wanted = commit
                self._changed.notify()

    def stop(self) -> None:
        """Finish the sync under way, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (self._wanted <= self.synced
                                              or self.error is not None):
                    self._changed.wait()
                if self._stopping:
                    return
            upto, error = self._sync()  # `want` came after its commit returned: covered
            if error is not None:
                self.error = error
            else:
                self.synced = max(self.synced, upto)
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is already due
                os.write(self._wake, b"\0")
