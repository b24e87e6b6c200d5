"""A Claude Code permission request answered in the real dashboard with its keys.

The hook events are those of tui/screenshots/claude.py (Claude Code's own, as the README
screenshot shows them), piped into real `taskdeck hook claude` processes against a real
in-process daemon; the dashboard is the real app driven by Pilot. What the waiting hook
prints is what Claude Code would read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from textual.pilot import Pilot
from textual.widget import Widget

from tests.tui.conftest import dashboard, move_to
from tui.app import DeckApp
from tui.screenshots import claude as session
from tui.screenshots.scene import Scene
from tui.widgets.panes import Inbox

pytestmark = pytest.mark.timeout(60)


def text_of(widget: Widget) -> str:
    """What a widget shows on screen, line by line."""
    return "\n".join(widget.render_line(y).text.rstrip() for y in range(widget.size.height))


@pytest.fixture
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(tmp_path_factory.mktemp("rt") / "run", steps=session.STEPS)


@contextlib.asynccontextmanager
async def on_the_question(scene: Scene
                          ) -> AsyncIterator[tuple[DeckApp, Pilot, asyncio.subprocess.Process]]:
    """The dashboard, synced; the session asks; the cursor is on its root task. Yields the
    app, its pilot and the waiting hook."""
    async with dashboard(scene) as (app, pilot):
        waiting = await session.ask(scene)
        try:
            assert scene.registry is not None
            [root] = [t for t in scene.registry.snapshot().tasks if t.key == session.ROOT_KEY]
            await move_to(app, pilot, root.id)
            yield app, pilot, waiting
        finally:
            await session.done(waiting)


async def answer_printed(waiting: asyncio.subprocess.Process) -> dict:
    """What the hook prints for Claude Code once the person answered (it then exits 0)."""
    out, _ = await asyncio.wait_for(waiting.communicate(), timeout=20)
    assert waiting.returncode == 0
    return json.loads(out)


async def test_the_question_reads_at_a_glance(scene: Scene) -> None:
    async with on_the_question(scene) as (app, _pilot, _waiting):
        bar = text_of(app.query_one("#prompt-question"))
        assert f"$ {session.COMMAND}" in bar
        assert "claude · Bash  in /home/dev/shop" in bar
        inbox = text_of(app.query_one(Inbox))
        assert f"claude · {session.SESSION[:8]}… · Bash  npm test" in inbox


async def test_a_lets_claude_code_run_the_tool(scene: Scene) -> None:
    async with on_the_question(scene) as (_app, pilot, waiting):
        await pilot.press("a")
        assert await answer_printed(waiting) == {"hookSpecificOutput": {
            "hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}


async def test_d_with_a_reason_denies_and_the_reason_is_what_claude_code_reads(
    scene: Scene,
) -> None:
    async with on_the_question(scene) as (_app, pilot, waiting):
        await pilot.press("d", *"run only the unit tests", "enter")
        assert await answer_printed(waiting) == {"hookSpecificOutput": {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": "run only the unit tests"}}}


async def test_x_on_the_session_stops_claude_code(scene: Scene) -> None:
    async with on_the_question(scene) as (_app, pilot, waiting):
        await pilot.press("x", "y")
        printed = await answer_printed(waiting)
        assert printed["continue"] is False
        assert printed["stopReason"].startswith("aborted in taskdeck by ")
        assert printed["hookSpecificOutput"] == {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": printed["stopReason"],
                         "interrupt": True}}
