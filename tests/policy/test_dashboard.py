"""`A` / `D` (approve or deny and remember) and the rules screen, in the real dashboard over
a real in-process daemon (Pilot)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from core.model import Action, PromptState, Question
from tests.support import until
from tests.tui.conftest import answered, ask, dashboard, move_to, settle
from tui.modes import Mode
from tui.rules import RulesScreen
from tui.screenshots.scene import Scene
from tui.widgets.bars import PromptBar
from tui.widgets.panes import DetailPane

pytestmark = pytest.mark.timeout(60)

NPM = Action(agent="claude", tool="Bash", input={"command": "npm test -- --watch"},
             cwd="/repo", session="S1")


def rules_of(scene: Scene):
    assert scene.registry is not None
    return scene.registry.list_rules()


async def test_shift_a_saves_the_proposed_session_rule_and_approves(scene: Scene) -> None:
    async with dashboard(scene) as (app, pilot):
        task_id, prompt_id = await ask(app, pilot, scene, "Run the tests?", NPM)
        await pilot.press("A")
        assert app.mode is Mode.REMEMBER
        bar = app.query_one(PromptBar)
        assert app.query_one("#prompt-input").value == "Bash(npm test *)"
        assert "for this session (S1)" in str(bar.query_one("#prompt-remember").render())
        await pilot.press("enter")
        prompt = await answered(scene, scene.registry.get_prompt(prompt_id))
        assert app.mode is Mode.NORMAL
        [rule] = rules_of(scene)
        assert (rule.effect.value, rule.pattern, rule.session) == ("allow", "Bash(npm test *)",
                                                                    "S1")
        # the rule, saved before the answer, covers the question: it answered it
        assert (prompt.answer, prompt.answered_by) == ("approve", f"rule {rule.id}")

        # the next npm test of that session is not asked; the detail pane names the rule
        again = scene.registry.open_prompt(task_id, Question(text="Again?", action=NPM))
        assert again.state is PromptState.ANSWERED
        await move_to(app, pilot, task_id)
        detail = app.query_one(DetailPane)
        await until(lambda: f"approved by rule {rule.id}: Bash(npm test *)"
                    in str(detail.render()), what="the rule in the detail pane")


async def test_the_editor_takes_a_scope_an_expiry_and_an_edited_pattern(scene: Scene) -> None:
    async with dashboard(scene) as (app, pilot):
        task_id, prompt_id = await ask(app, pilot, scene, "Run the tests?", NPM)
        await pilot.press("D", "tab", "ctrl+e", "ctrl+e")
        options = str(app.query_one("#prompt-remember").render())
        assert f"#{task_id} and its sub-tasks" in options and "in 8 hours" in options
        box = app.query_one("#prompt-input")
        box.value = "Bash(npm *)"
        await pilot.press("enter")
        prompt = await answered(scene, scene.registry.get_prompt(prompt_id))
        [rule] = rules_of(scene)
        assert (rule.effect.value, rule.pattern, rule.task_id, rule.session) == (
            "deny", "Bash(npm *)", task_id, None)
        assert rule.expires_at == pytest.approx(rule.added_at + 8 * 3600)
        assert prompt.answer == "deny" and prompt.reason == f"denied by rule {rule.id}: Bash(npm *)"


async def test_esc_goes_back_and_a_bad_rule_keeps_the_editor_open(scene: Scene) -> None:
    async with dashboard(scene) as (app, pilot):
        _, prompt_id = await ask(app, pilot, scene, "Run the tests?", NPM)
        await pilot.press("A", "escape")
        assert app.mode is Mode.NORMAL and rules_of(scene) == []
        await pilot.press("A")
        for text in ("Bash(npm test", "Bash(*)"):
            app.query_one("#prompt-input").value = text
            await pilot.press("enter")
            assert app.mode is Mode.REMEMBER  # still open, to fix it
        assert rules_of(scene) == []
        assert scene.registry.get_prompt(prompt_id).state is PromptState.PENDING
        assert "matches every use of Bash" in app.notices[-1][1]


async def test_a_plain_question_offers_no_rule(scene: Scene) -> None:
    async with dashboard(scene) as (app, pilot):
        await ask(app, pilot, scene, "Deploy?", None)
        await pilot.press("A")
        assert app.mode is Mode.NORMAL
        assert "rules decide only an agent's actions" in app.notices[-1][1]


async def test_the_rules_screen_lists_filters_and_deletes_with_a_confirmation(
    scene: Scene,
) -> None:
    async with dashboard(scene) as (app, pilot):
        registry = scene.registry
        registry.add_rule("allow", "Bash(npm test *)", session="S1")
        registry.add_rule("deny", "Bash(curl *)", agent="codex")
        registry.add_rule("allow", "Edit(src/**)", agent="claude")
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RulesScreen)
        table = screen.query_one(DataTable)
        await until(lambda: table.row_count == 3, what="the rules listed")
        await pilot.press("f")  # claude: the claude rule and the rule for every agent
        assert [r.id for r in screen.shown] == [1, 3]
        await pilot.press("f", "f")
        assert screen.agent is None and table.row_count == 3
        await pilot.press("j", "x")
        assert screen.confirming is not None and screen.confirming.id == 2
        await pilot.press("n")
        assert len(registry.list_rules()) == 3
        await pilot.press("x", "y")
        await until(lambda: table.row_count == 2, what="the rule deleted")
        assert [r.id for r in registry.list_rules()] == [1, 3]
        await pilot.press("escape")
        assert not isinstance(app.screen, RulesScreen)
        await settle(app, pilot)
