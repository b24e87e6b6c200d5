"""A daemon that cannot record decisions says so on the dashboard, not only in its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.model import PromptState
from tests.support import until
from tests.tui.conftest import SIZE, deck, ready
from tui.screenshots.scene import Scene

pytestmark = pytest.mark.timeout(60)


async def test_a_deleted_journal_is_said_and_the_answer_refused(
    runtime_dir: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "state" / "journal.sqlite3"
    # idle heartbeats every 30 s: only the daemon's announcement of the failure can tell
    scene = Scene(runtime_dir, journal_path=journal, heartbeat=30.0)
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        title = app.query_one("#tree-box")
        assert "JOURNAL FAILED" not in str(title.border_title)
        journal.unlink()
        await pilot.press("b")
        prompt_id = next(iter(app.view.mirror.prompts))
        await pilot.press("a")  # the daemon finds its journal gone and refuses
        await until(lambda: "JOURNAL FAILED" in str(title.border_title),
                    what="the tree's title to say the journal failed")
        assert scene.registry.get_prompt(prompt_id).state is PromptState.PENDING
        said = [text for severity, text in app.notices if severity == "error"]
        assert any("cannot record decisions" in text for text in said), app.notices
