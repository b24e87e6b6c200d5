"""Packed questions as a client sees them: `get`, `show --json`, a second answer's refusal
and the snapshot over a real daemon read every answered question as it closed, and so
do they after a restart that restores them from the journal."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from core.cli import main
from core.client import SyncClient
from core.errors import AlreadyAnswered
from core.history import BLOCK, PACK_EVERY
from core.model import Prompt
from tests.core.test_history import asked_and_answered
from tests.wire.conftest import HEARTBEAT, ThreadedDaemon

COUNT = PACK_EVERY + 2 * BLOCK
"""Questions asked: enough for most of their blocks to be packed."""

CHUNK = 128
"""Questions asked per call into the daemon's loop, each call well within its timeout."""


def _fill(served: ThreadedDaemon) -> tuple[dict[int, Prompt], Prompt]:
    """COUNT answered questions and one still pending, asked in the daemon's own loop."""
    registry = served.registry
    assert registry is not None
    closed: dict[int, Prompt] = {}
    for start in range(0, COUNT, CHUNK):
        closed.update(served.call(  # type: ignore[arg-type]
            lambda start=start: asked_and_answered(registry, CHUNK, start)))
    pending = served.call(lambda: registry.open_prompt(
        registry.open_external("still asking").id, "Go on?"))
    assert isinstance(pending, Prompt)
    return closed, pending


def _packed(served: ThreadedDaemon) -> int:
    return served.call(lambda: served.registry._prompts.packed)  # type: ignore[union-attr,return-value]


def _reads_back(runtime: Path, closed: dict[int, Prompt], pending: Prompt) -> None:
    with SyncClient(runtime) as client:
        for task_id, prompt in closed.items():
            task, prompts = client.get(task_id)
            assert task.id == task_id and prompts == [prompt]
        assert client.snapshot().prompts == [pending]


def test_packed_questions_read_the_same_over_the_wire_and_after_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, journal = tmp_path / "run", tmp_path / "journal.sqlite3"
    monkeypatch.setenv("TASKDECK_RUNTIME_DIR", str(runtime))
    with ThreadedDaemon(runtime, heartbeat=HEARTBEAT, journal=journal) as first:
        closed, pending = _fill(first)
        assert _packed(first) > COUNT // 2
        _reads_back(runtime, closed, pending)
        oldest = min(closed)
        capsys.readouterr()
        assert main(["show", str(oldest), "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["prompts"] == json.loads(msgspec.json.encode([closed[oldest]]))
        old = closed[oldest]
        with SyncClient(runtime) as client, pytest.raises(
                AlreadyAnswered, match=f"answered '{old.answer}' by {old.answered_by}"):
            client.answer(old.id, "hold")
    with ThreadedDaemon(runtime, heartbeat=HEARTBEAT, journal=journal) as second:
        assert _packed(second) > COUNT // 2  # restored history is packed too
        _reads_back(runtime, closed, pending)
