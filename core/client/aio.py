"""The async `Client`: commands with timeouts and retries, a live mirror, and the
external tasks this process reports on, all on the caller's event loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import protocol as p
from core.client.endpoint import ClientOptions
from core.client.external import ExternalTask
from core.client.follow import _Following


class Client(_Following):
    """Talks to one daemon: commands with timeouts and retries, and an optional live mirror.

    Args:
        runtime_dir: where the daemon's connection file is (default: ours).
        options: how to reach the daemon; see `ClientOptions`.
        **overrides: any field of `ClientOptions` (`request_timeout=1.0`,
            `client_name="tui"`...), over `options`.
    """

    def __init__(
        self,
        runtime_dir: Path | str | None = None,
        *,
        options: ClientOptions | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(runtime_dir, options=options, **overrides)
        self._external: set[ExternalTask] = set()

    # -------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Read the connection file and open the command socket (no request is sent).

        Raises:
            Unavailable: no daemon is running on the runtime dir.
            VersionMismatch: the daemon speaks another protocol version.
        """
        self._refresh_connection()
        self._open_req()

    async def close(self) -> None:
        """Stop the mirror and lease heartbeats, close every socket (LINGER 0)."""
        self._closed = True
        for task in list(self._external):
            await task.close()
        await super().close()

    # ---------------------------------------------------------- external tasks

    async def open_task(
        self,
        description: str,
        *,
        agent: str = "external",
        parent_id: int | None = None,
        lease: float = 10.0,
        timeout: float | None = None,
        key: str | None = None,
    ) -> ExternalTask:
        """Open a task this process reports on; its lease is renewed in the background.

        With a `key` ("claude:SESSION_ID") that a live task was opened with, that task
        comes back instead of a new one, so a new process finds its session's task again.
        """
        body = p.Open(
            description=description, agent=agent, parent_id=parent_id, lease=lease,
            timeout=timeout, key=key,
        )
        task = (await self._call(body, p.TaskResult)).task
        handle = ExternalTask(self, task, lease, on_close=self._external.discard)
        self._external.add(handle)
        return handle
