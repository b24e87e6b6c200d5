"""The daemon in its own process: asked from a second process, answered from a third, stopped by signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.client import Client, ConnectionState
from core.model import TaskStatus
from core.runtime import connection_path
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.wire.procs", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def daemon_process(runtime_dir: Path) -> Iterator[subprocess.Popen[str]]:
    proc = spawn("serve", str(runtime_dir))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), proc.stderr.read() if proc.stderr else line
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


async def test_ask_in_one_process_answered_from_another(
    daemon_process: subprocess.Popen[str], runtime_dir: Path
) -> None:
    asker = spawn("ask", str(runtime_dir), "Deploy to prod?")
    try:
        async with Client(runtime_dir, client_name="tui") as client:
            await client.start_mirror()
            await client.wait_synced()
            await until(lambda: client.mirror.prompts, timeout=10, what="the question")
            prompt = next(iter(client.mirror.prompts.values()))
            assert prompt.question == "Deploy to prod?"
            task = client.mirror.tasks[prompt.task_id]
            assert (task.agent, task.status) == ("ask", TaskStatus.BLOCKED)
            await client.answer(prompt.id, "deny", reason="change freeze")
            out, err = asker.communicate(timeout=10)
            assert asker.returncode == 1, err
            assert out.splitlines()[-1] == "deny change freeze"
            await until(lambda: client.mirror.tasks[task.id].status is TaskStatus.FINISHED)
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait(5)


async def test_sigterm_shuts_down_cleanly(
    daemon_process: subprocess.Popen[str], runtime_dir: Path
) -> None:
    async with Client(runtime_dir, request_timeout=0.3, retries=1) as client:
        await client.start_mirror()
        await client.wait_synced()
        hello = await client.hello()
        assert hello["pid"] == daemon_process.pid != os.getpid()
        daemon_process.send_signal(signal.SIGTERM)
        assert daemon_process.wait(10) == 0
        assert not connection_path(runtime_dir).exists()
        assert sorted(p.name for p in runtime_dir.iterdir()) == []
        await until(lambda: client.state is ConnectionState.DISCONNECTED)
