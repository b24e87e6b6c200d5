"""Entry points the wire tests run as separate processes: a daemon, and an asking script."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.client import SyncClient
from core.model import Verdict
from core.server import serve_forever
from tests.wire.conftest import HEARTBEAT, make_registry


def serve(runtime_dir: str) -> int:
    """Serve a test registry until SIGTERM/SIGINT; prints "ready" once listening."""

    async def main() -> None:
        await serve_forever(
            make_registry(),
            Path(runtime_dir),
            heartbeat=HEARTBEAT,
            on_ready=lambda daemon: print("ready", daemon.connection.pid, flush=True),
        )

    asyncio.run(main())
    return 0


def ask(runtime_dir: str, question: str) -> int:
    """Open an external task, ask, print the answer; exit 0 on approval, 1 on denial, 3 on a reply."""
    with SyncClient(Path(runtime_dir), client_name="ask", request_timeout=1.0) as client:
        with client.open_task(question, agent="ask", lease=2.0) as task:
            print("asking", task.id, flush=True)
            prompt = task.ask(question)
            print(prompt.answer, prompt.reason or "", flush=True)
            return {Verdict.APPROVED: 0, Verdict.DENIED: 1}.get(prompt.verdict, 3)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    sys.exit({"serve": serve, "ask": ask}[command](*args))
