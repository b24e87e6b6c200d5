"""`ls`, `show` and `history` print a question's action, escaped like every other text."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import protocol as p
from core.client import SyncClient
from core.model import Action, Question
from tests.cli.conftest import Deck
from tests.support import until_sync

pytestmark = pytest.mark.timeout(60)

SNEAKY = Action(agent="claude", tool="Bash", cwd="/repo",
                input={"command": "rm -rf build\x1b[2K pytest -q"})
SHOWN = "rm -rf build\\x1b[2K pytest -q"


def test_ls_show_and_history_print_the_action_summary(tmp_path: Path) -> None:
    deck = Deck(tmp_path)
    deck.serve("--journal", str(tmp_path / "journal.sqlite3"))
    try:
        _ask_and_print(deck, tmp_path)
    finally:
        deck.stop()


def _ask_and_print(deck: Deck, tmp_path: Path) -> None:
    with SyncClient(runtime_dir=deck.runtime_dir, state_dir=tmp_path / "state") as client:
        task = client.open_task("claude session", agent="claude", key="claude:S1", lease=60)
        client.request(p.Ask.of(task.id, Question(text="Run it?", action=SNEAKY)))
        until_sync(lambda: any(t["status"] == "blocked" for t in deck.tasks()),
                   what="the task to ask")
        listed = deck.run("ls").stdout
        assert f"action: {SHOWN}" in listed and "\x1b" not in listed
        shown = deck.run("show", str(task.id)).stdout
        assert f"claude Bash: {SHOWN}" in shown and "/repo" in shown and "\x1b" not in shown
        assert deck.run("answer", str(task.id), "deny").returncode == 0
        ran = deck.run("history")
        history = ran.stdout
        assert ran.returncode == 0, ran.stderr
        assert "? Run it?" in history and f"action: {SHOWN}" in history
        assert "\x1b" not in history
        task.finish("done")
