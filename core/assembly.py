"""One place that puts a daemon together: journal, registry, retention and server.

`taskdeck serve`, `taskdeck demo`, the screenshot scene and the tests all build their
daemon here, so each is opened, served and closed in the same order:

1. the journal is opened (when there is one);
2. the registry is made, its first id after every id the journal ever gave, with
   its agents;
3. the journal records the registry and restores what it holds (its approval rules too);
4. retention starts trimming ended tasks (when asked);
5. the server binds its sockets and serves the registry, its journal recording
   every decision;

and on the way out: the server stops, the registry's runs are cancelled, retention
stops, and the journal writes what is pending and closes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from core.errors import InvalidState
from core.journal import Journal
from core.registry import Registry
from core.retention import Retention
from core.server import Daemon, until_signalled


class Assembly:
    """A registry served by a daemon, with its journal and retention.

    Use `async with Assembly(...) as deck:` (opens, starts; closes on exit), or
    `open()`, then `serve()` until a signal, for a process that is a daemon.

    Args:
        make_registry: makes the registry (with its agents) given the first free task
            and prompt id: 1 without a journal, else the journal's `next_id()`.
        runtime_dir: where the sockets and the connection file go.
        journal: the journal file; None keeps no journal.
        retain: ended tasks kept in memory (`Retention`); None keeps all, untrimmed.
        **options: passed on to `Daemon` (heartbeat, bind, allow_plain_tcp, ...).
    """

    def __init__(
        self,
        make_registry: Callable[[int], Registry],
        *,
        runtime_dir: Path,
        journal: Path | None = None,
        retain: int | None = None,
        **options: Any,
    ) -> None:
        self.make_registry = make_registry
        self.runtime_dir = Path(runtime_dir)
        self.journal_path = journal
        self.retain = retain
        self.options = options
        self.journal: Journal | None = None
        self._registry: Registry | None = None
        self.retention: Retention | None = None
        self.daemon: Daemon | None = None
        """The running daemon; None before `start` and after `stop`."""
        self._closed = False

    @property
    def registry(self) -> Registry:
        """The served registry (after `open`)."""
        if self._registry is None:
            raise InvalidState("the daemon is not assembled yet: call open() first")
        return self._registry

    def open(self) -> Assembly:
        """Open the journal, make and restore the registry, start retention (steps 1-4).

        Raises:
            JournalError: the journal cannot be opened or read (nothing is left open).
        """
        if self._registry is not None:
            return self
        journal = Journal.open(self.journal_path) if self.journal_path is not None else None
        try:
            registry = self.make_registry(journal.next_id() if journal is not None else 1)
            if journal is not None:
                journal.attach(registry)
                registry.restore(*journal.load())
                registry.restore_rules(*journal.rules())
                journal.commit()
        except BaseException:
            if journal is not None:
                journal.close()
            raise
        self.journal, self._registry = journal, registry
        if self.retain is not None:
            self.retention = Retention(registry, max_ended=self.retain)
            self.retention.start()
        return self

    async def start(self) -> Daemon:
        """Serve the registry (step 5; again after `stop`); opens it first if need be."""
        self.open()
        if self.daemon is None:
            daemon = Daemon(self.registry, runtime_dir=self.runtime_dir, journal=self.journal,
                            **self.options)
            await daemon.start()
            self.daemon = daemon
        return self.daemon

    async def stop(self) -> None:
        """Stop serving; the registry, its tasks and its journal live on."""
        daemon, self.daemon = self.daemon, None
        if daemon is not None:
            await daemon.stop()

    async def close(self) -> None:
        """Stop serving, cancel the registry's runs, stop retention, close the journal."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.stop()
        finally:
            if self._registry is not None:
                await self._registry.close()
            if self.retention is not None:
                self.retention.stop()
            if self.journal is not None:
                self.journal.close()

    async def serve(self, *, on_ready: Callable[[Daemon], object] | None = None,
                    stop_signals: bool = True) -> None:
        """Serve until SIGINT/SIGTERM (or cancellation), then close everything.

        Args:
            on_ready: called with the started daemon (e.g. to print where it listens).
            stop_signals: install SIGINT/SIGTERM handlers that stop the daemon.
        """
        try:
            with until_signalled(stop_signals) as stop:
                daemon = await self.start()
                if on_ready is not None:
                    on_ready(daemon)
                await stop.wait()
        finally:
            await self.close()

    async def __aenter__(self) -> Assembly:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
