"""Faults: kill -9 the daemon in the middle of a load of answers, then start it on its journal."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import protocol as p
from core.client import Client
from core.journal import Journal
from core.model import EndReason, PromptState, TaskStatus
from core.runtime import connection_path
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]


class Deck:
    """`taskdeck serve` with a journal, as a subprocess that can be killed and started again.

    `fsize` caps the size of any file the daemon writes (RLIMIT_FSIZE, set in the child
    before it starts): once the journal's WAL reaches it, every write fails with EFBIG,
    a real fault that root cannot bypass (unlike file modes).
    """

    def __init__(self, tmp: Path, *, fsize: int | None = None) -> None:
        self.fsize = fsize
        self.runtime_dir = tmp / "run"
        self.state_dir = tmp / "state"
        self.journal = self.state_dir / "journal.sqlite3"
        self.log = tmp / "daemon.log"
        self.env = {
            **os.environ,
            "TASKDECK_RUNTIME_DIR": str(self.runtime_dir),
            "TASKDECK_STATE_DIR": str(self.state_dir),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> float:
        """Start the daemon; returns the seconds until it answers requests."""
        started = time.perf_counter()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "core.cli", "serve",
                    "--journal", str(self.journal),
                    "--agents", "forever=tests.journal.agents:forever",
                    "--max-concurrent", "2",
                ],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=self._limit if self.fsize is not None else None,
            )
        self.starts += 1
        await until(self._ready, timeout=15, what="the daemon's connection file")
        async with Client(self.runtime_dir) as client:
            await client.hello()
        return time.perf_counter() - started

    def _limit(self) -> None:
        """In the child, before exec: cap file sizes (Python ignores SIGXFSZ: writes get EFBIG)."""
        assert self.fsize is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize, self.fsize))

    def cli(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run one `taskdeck` command against this daemon (and its state dir)."""
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a `taskdeck` command that keeps running (e.g. `ask`)."""
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", *args],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited: {self.log.read_text()[-2000:]}")
        try:
            info = json.loads(connection_path(self.runtime_dir).read_bytes())
        except (OSError, ValueError):
            return False
        return info.get("pid") == self.process.pid

    def kill(self) -> None:
        """kill -9: no clean-up of any kind runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


async def start_worker(deck: Deck, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.journal.workers", args[0], str(deck.runtime_dir), *args[1:],
        cwd=ROOT, env=deck.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


def acknowledged(logs: list[Path]) -> dict[int, str]:
    """Answers the answerers got an ok for, from their logs."""
    out: dict[int, str] = {}
    for log in logs:
        if log.exists():
            for line in log.read_text().splitlines():
                prompt_id, text = line.split(" ", 1)
                out[int(prompt_id)] = text
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def kill_during_answers(tmp_path: Path, *, prompts: int, kills: int, answerers: int) -> dict:
    deck = Deck(tmp_path)
    reporter: asyncio.subprocess.Process | None = None
    try:
        await deck.start()
        async with Client(deck.runtime_dir) as client:
            first_epoch = (await client.hello())["epoch"]
            running = [(await client.submit("forever", f"in-process {i}")).id for i in range(2)]
            owner: dict[int, int] = {}
            for i in range(prompts):
                task = (await client.request(p.Open(description=f"needs a go {i}", lease=600))).task
                prompt = (await client.request(p.Ask(task_id=task.id, question=f"go {i}?"))).prompt
                owner[prompt.id] = task.id

            # A reporter process that waits on its question through every restart.
            reporter = await start_worker(deck, "report")
            line = await asyncio.wait_for(reporter.stdout.readline(), timeout=15)
            reporter_task = json.loads(line)["task"]
            reporter_prompt: list[int] = []

            async def reporter_blocked() -> bool:
                task, asked = await client.get(reporter_task)
                reporter_prompt[:] = [q.id for q in asked]
                return task.status is TaskStatus.BLOCKED

            deadline = time.monotonic() + 15
            while not await reporter_blocked():
                assert time.monotonic() < deadline, "the reporter never asked"
                await asyncio.sleep(0.01)  # polling a condition, with a deadline

        logs: list[Path] = []
        waiting_at_kill: list[int] = []
        unacknowledged_applied: list[int] = []
        restart_seconds: list[float] = []
        epochs = {first_epoch}
        for cycle in range(kills):
            todo = sorted(set(owner) - set(acknowledged(logs)))
            share = [todo[i::answerers] for i in range(answerers)]
            cycle_logs = [tmp_path / f"acks-{cycle}-{i}.log" for i in range(answerers)]
            logs += cycle_logs
            workers = [
                await start_worker(deck, "answer", str(log), *map(str, ids))
                for log, ids in zip(cycle_logs, share)
            ]
            before = len(acknowledged(logs))
            target = before + len(todo) // 4
            await until(lambda: len(acknowledged(logs)) >= target, timeout=20,
                        what="answers to get their ok")
            deck.kill()
            waiting_at_kill.append(len(todo) - (len(acknowledged(logs)) - before))
            for worker in workers:
                _, err = await asyncio.wait_for(worker.communicate(), timeout=20)
                assert worker.returncode == 0, err.decode()
            restart_seconds.append(await deck.start())

            async with Client(deck.runtime_dir) as client:
                hello = await client.hello()
                assert hello["epoch"] not in epochs  # clients see a new epoch and resync
                epochs.add(hello["epoch"])
                acks = acknowledged(logs)
                # Every answer that got an ok survived the kill, with its text.
                lost = []
                for prompt_id, text in acks.items():
                    _, asked = await client.get(owner[prompt_id])
                    [kept] = [q for q in asked if q.id == prompt_id]
                    if (kept.state, kept.answer) != (PromptState.ANSWERED, text):
                        lost.append(prompt_id)
                assert lost == [], f"acknowledged answers lost: {lost}"
                # In-process tasks that died with the daemon ended, and said why.
                for task_id in running:
                    task, _ = await client.get(task_id)
                    assert task.status is TaskStatus.FAILED
                    assert task.end_reason is EndReason.RESTARTED
                # No task is left in a state that cannot end: live ones are external (leased).
                snapshot = await client.snapshot()
                assert all(t.status.is_ended or t.external for t in snapshot.tasks)
                details = await asyncio.gather(
                    *(client.get(t) for t in sorted(set(owner.values())))
                )
                answered = {
                    q.id for _, asked in details for q in asked if q.state is PromptState.ANSWERED
                }
                assert set(acks) <= answered
                pending = {q.id for q in snapshot.prompts}
                assert pending | answered == set(owner) | set(reporter_prompt)

            # The audit trail agrees with the prompts: one entry per answer, no more, no less.
            with Journal.open(deck.journal) as journal:
                audited = {e.prompt_id: e.detail for e in journal.history() if e.action == "answer"}
            assert {k: v for k, v in audited.items() if k in acks} == acks
            assert set(audited) == answered
            unacknowledged_applied.append(len(set(audited) - set(acks)))

            # The private dirs and files kept their modes across the restart.
            assert mode(deck.runtime_dir) == 0o700
            assert mode(connection_path(deck.runtime_dir)) == 0o600
            assert mode(deck.state_dir) == 0o700
            assert mode(deck.journal) == 0o600

        # The reporter's question waited through every restart; the answer reaches it now.
        async with Client(deck.runtime_dir, client_name="tui") as client:
            await client.answer(reporter_prompt[0], "approve")
        out, err = await asyncio.wait_for(reporter.communicate(), timeout=20)
        assert reporter.returncode == 0, err.decode()
        assert json.loads(out.decode().strip().splitlines()[-1])["answer"] == "approve"
        reporter = None

        assert deck.stop() == 0  # and a clean stop still works after all that
        assert not connection_path(deck.runtime_dir).exists()

        # `taskdeck history` (default journal path under the state dir) shows every decision.
        shown = subprocess.run(
            [sys.executable, "-m", "core.cli", "history", "--json", "--limit", "100000"],
            cwd=ROOT, env=deck.env, capture_output=True, text=True, timeout=20,
        )
        assert shown.returncode == 0, shown.stderr
        history = json.loads(shown.stdout)
        shown_answers = {e["prompt_id"]: e["detail"] for e in history if e["action"] == "answer"}
        assert {k: v for k, v in shown_answers.items() if k in acks} == acknowledged(logs)
        assert shown_answers[reporter_prompt[0]] == "approve"
        assert {e["client"] for e in history} >= {"answerer", "tui"}
        return {
            "kills": kills,
            "prompts": prompts,
            "answers acknowledged": len(acknowledged(logs)),
            "answers still to send at each kill": waiting_at_kill,
            "answers applied whose ok was lost in a kill": unacknowledged_applied[-1],
            "acknowledged answers lost": len(lost),
            "restart seconds (max)": round(max(restart_seconds), 2),
        }
    finally:
        if reporter is not None and reporter.returncode is None:
            reporter.kill()
            await reporter.wait()
        deck.stop()


async def test_kill_9_during_answers_loses_no_acknowledged_decision(
    tmp_path: Path, figures: dict
) -> None:
    figures["faults"] = await kill_during_answers(tmp_path, prompts=300, kills=1, answerers=3)


@pytest.mark.heavy
@pytest.mark.timeout(300)
async def test_repeated_kill_9_during_answers(tmp_path: Path, figures: dict) -> None:
    figures["faults (heavy)"] = await kill_during_answers(
        tmp_path, prompts=2000, kills=5, answerers=6
    )
