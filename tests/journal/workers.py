"""Client processes the reliability tests start: load, answerers, and a reporter that asks.

Run as `python -m tests.journal.workers KIND RUNTIME_DIR ...`; each prints one JSON line
with what it did, so the test can check the daemon's final state against it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from core import protocol as p
from core.client import Client, SyncClient
from core.errors import TaskdeckError, Unavailable

CYCLE = 5
"""Commands in one load cycle: open, tokens, ask, answer, finish."""


async def load(runtime_dir: Path, worker: int, commands: int) -> dict[str, object]:
    """Open, spend tokens, ask, answer and finish external tasks: `commands` requests."""
    replies = 0
    tasks: list[int] = []
    answers: dict[int, str] = {}
    started = time.perf_counter()
    async with Client(runtime_dir, client_name=f"load{worker}") as client:
        for cycle in range(commands // CYCLE):
            opened = await client.request(p.Open(description=f"w{worker} c{cycle}", lease=120))
            task_id = opened.task.id
            replies += 1
            await client.request(p.Tokens(task_id=task_id, prompt=3, completion=4))
            replies += 1
            asked = await client.request(p.Ask(task_id=task_id, question=f"go {cycle}?"))
            replies += 1
            text = f"yes-{worker}-{cycle}"
            prompt = await client.answer(asked.prompt.id, text)
            assert prompt.answer == text
            replies += 1
            await client.request(p.Finish(task_id=task_id, result=f"r{worker}-{cycle}"))
            replies += 1
            tasks.append(task_id)
            answers[prompt.id] = text
        retries = client.retry_count
    return {
        "worker": worker,
        "replies": replies,
        "tasks": tasks,
        "answers": answers,
        "retries": retries,
        "seconds": time.perf_counter() - started,
    }


async def answer(runtime_dir: Path, log: Path, prompt_ids: list[int]) -> dict[str, object]:
    """Answer each prompt; log every answer that got its ok, flushed, before the next one.

    Stops at the first request the daemon does not answer (it was killed), or at once
    when it was killed before this process got to connect.
    """
    oks = 0
    refused = 0
    client = Client(runtime_dir, client_name="answerer", request_timeout=0.5, retries=2)
    try:
        await client.connect()
    except Unavailable:
        return {"oks": oks, "refused": refused}
    try:
        with open(log, "a", buffering=1) as out:
            for prompt_id in prompt_ids:
                text = f"ok-{prompt_id}"
                try:
                    await client.answer(prompt_id, text)
                except Unavailable:
                    break
                except TaskdeckError:
                    refused += 1
                    continue
                out.write(f"{prompt_id} {text}\n")
                oks += 1
    finally:
        await client.close()
    return {"oks": oks, "refused": refused}


def report(runtime_dir: Path) -> dict[str, object]:
    """An external reporter: open a task, ask, wait for the answer while the daemon is away."""
    with SyncClient(runtime_dir, client_name="reporter", request_timeout=1.0, retries=3) as client:
        with client.open_task("reporter's deploy", lease=30.0) as task:
            print(json.dumps({"task": task.id}), flush=True)
            prompt = task.ask("Deploy while the daemon restarts?")
            return {"task": task.id, "prompt": prompt.id, "answer": prompt.answer}


def main(argv: list[str]) -> int:
    kind, runtime_dir, *rest = argv
    runtime = Path(runtime_dir)
    if kind == "load":
        out = asyncio.run(load(runtime, int(rest[0]), int(rest[1])))
    elif kind == "answer":
        out = asyncio.run(answer(runtime, Path(rest[0]), [int(i) for i in rest[1:]]))
    elif kind == "report":
        out = report(runtime)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
