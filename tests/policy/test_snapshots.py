"""SVG snapshots of the rule editor and the rules screen over the scripted scene (fixed clock)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable

from core.model import Action, Question
from tests.support import until
from tests.tui.conftest import SIZE, deck, move_to, ready, settle
from tui.screenshots.scene import Scene
from tui.widgets.bars import NoticeBar

Compare = Callable[..., bool]

NPM = Action(agent="claude", tool="Bash", input={"command": "npm test -- --watch"},
             cwd="/home/me/shop", session="5e55-1a2b")


def test_remember_editor(snap_compare: Compare, scene: Scene) -> None:
    """A claude session asks to run `npm test -- --watch`; after `A` then tab the prompt bar
    holds the question with its action, the box "allow rule ›" prefilled with
    `Bash(npm test *)`, and under it "for #14 and its sub-tasks (tab) · expires never
    (ctrl+e) · ⏎ saves the rule and approves · esc goes back"."""

    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await ready(app, pilot)  # type: ignore[arg-type]
        assert scene.registry is not None
        task = scene.registry.open_external("claude: fix the checkout flow", agent="claude")
        scene.registry.open_prompt(task.id, Question(text="Run npm test?", action=NPM))
        await until(lambda: task.id in app.view.index, what="the asking row")  # type: ignore[attr-defined]
        await until(lambda: any("Run npm test?" in text for _, text in app.notices),  # type: ignore[attr-defined]
                    what="the new question's notice")
        app.query_one(NoticeBar).clear()  # shown for seconds of wall time: not in a snapshot
        await move_to(app, pilot, task.id)  # type: ignore[arg-type]
        await pilot.press("A", "tab")
        await settle(app, pilot)  # type: ignore[arg-type]

    assert snap_compare(deck(scene), terminal_size=SIZE, run_before=before)


def test_rules_screen(snap_compare: Compare, scene: Scene) -> None:
    """`R` over three rules: 1 allow Bash(npm test *) for session 5e55-1a2b with 2 hits, last
    used 0s ago; 2 deny Bash(curl *) for codex, everywhere, expires in 1h00m; 3 allow
    Edit(src/**) for claude, "task 1 and below"; the title says 3 rules shown (agent: any); the
    footer offers f, x, r, esc."""

    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await ready(app, pilot)  # type: ignore[arg-type]
        registry = scene.registry
        assert registry is not None
        registry.add_rule("allow", "Bash(npm test *)", session="5e55-1a2b", by="cli:ana@box")
        registry.add_rule("deny", "Bash(curl *)", agent="codex", expires=3600, by="tui:bo@box")
        registry.add_rule("allow", "Edit(src/**)", agent="claude", task_id=1, by="cli:ana@box")
        session = registry.open_external("claude session", agent="claude")
        for _ in range(2):
            registry.open_prompt(session.id, Question(text="Run?", action=NPM))
        await pilot.press("R")
        table = app.screen.query_one(DataTable)
        await until(lambda: table.row_count == 3, what="the rules listed")
        await pilot.pause()

    assert snap_compare(deck(scene), terminal_size=SIZE, run_before=before)
