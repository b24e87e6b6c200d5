"""Load: many client processes against one journaled daemon; all requests answered, counts exact."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from core.assembly import Assembly
from core.model import PromptState, TaskStatus
from core.registry import Registry
from tests.journal.workers import CYCLE

ROOT = Path(__file__).resolve().parents[2]


async def run_load(tmp_path: Path, processes: int, commands: int) -> dict[str, object]:
    runtime = tmp_path / "run"
    async with Assembly(lambda first_id: Registry(first_id=first_id), runtime_dir=runtime,
                        journal=tmp_path / "state" / "journal.sqlite3") as assembled:
        registry, journal, daemon = assembled.registry, assembled.journal, assembled.daemon
        assert journal is not None and daemon is not None
        env = {**os.environ, "TASKDECK_RUNTIME_DIR": str(runtime),
               "TASKDECK_STATE_DIR": str(tmp_path / "state")}
        started = time.perf_counter()
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.journal.workers", "load", str(runtime),
                str(w), str(commands),
                cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            for w in range(processes)
        ]
        outputs = []
        for worker in workers:
            out, err = await worker.communicate()
            assert worker.returncode == 0, err.decode()
            outputs.append(json.loads(out.decode().strip().splitlines()[-1]))
        elapsed = time.perf_counter() - started
        requests = daemon.requests

        cycles = commands // CYCLE
        # Every request got its reply.
        assert [o["replies"] for o in outputs] == [cycles * CYCLE] * processes
        # Final counts match exactly what the clients did.
        task_ids = [t for o in outputs for t in o["tasks"]]
        assert len(task_ids) == len(set(task_ids)) == processes * cycles
        tasks = {t.id: t for t in registry.list(limit=None)}
        assert set(tasks) == set(task_ids)
        assert all(t.status is TaskStatus.FINISHED for t in tasks.values())
        assert sum(t.prompt_tokens for t in tasks.values()) == 3 * len(task_ids)
        assert sum(t.completion_tokens for t in tasks.values()) == 4 * len(task_ids)
        answers = {int(k): v for o in outputs for k, v in o["answers"].items()}
        for prompt_id, text in answers.items():
            prompt = registry.get_prompt(prompt_id)
            assert (prompt.state, prompt.answer) == (PromptState.ANSWERED, text)
        # Every decision is in the journal, exactly once.
        journal.commit()
        recorded = {e.prompt_id: e.detail for e in journal.history() if e.action == "answer"}
        assert recorded == answers
        stored, prompts = journal.load()
        assert len(stored) == len(task_ids)
        assert all(t.status is TaskStatus.FINISHED for t in stored)
        return {
            "processes": processes,
            "commands per process": commands,
            "requests answered": requests,
            "decisions journaled": len(recorded),
            "client retries": sum(o["retries"] for o in outputs),
            "seconds": round(elapsed, 2),
            "requests/s": round(requests / elapsed),
        }


async def test_load_8_processes_x_100_commands(tmp_path: Path, figures: dict) -> None:
    figures["load"] = await run_load(tmp_path, processes=8, commands=100)


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_load_20_processes_x_500_commands(tmp_path: Path, figures: dict) -> None:
    figures["load (heavy)"] = await run_load(tmp_path, processes=20, commands=500)
