"""The dashboard below 70 columns (a phone in a browser): one column, touch buttons."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Footer

from core.model import Prompt, PromptState, Verdict
from tests.support import until
from tests.tui.conftest import answered, dashboard, deck, move_to, pending_of, settle
from tests.tui.test_snapshots import run_before
from tui.app import DeckApp
from tui.screenshots.scene import RESEARCH, Scene
from tui.widgets.bars import PromptBar
from tui.widgets.panes import Inbox
from tui.widgets.task_tree import TaskTree
from tui.widgets.touch import TouchBar

PHONE = (60, 30)
"""A narrow terminal; a phone's browser at 390 px is about 41x46."""

FETCH = "Estimate hosting cost for 10M vectors"


def shown_buttons(app) -> list[str]:
    return [str(b.label) for b in app.query_one(TouchBar).children if b.display]


async def at_question(app: DeckApp, pilot: Pilot, scene: Scene, description: str = FETCH
                      ) -> Prompt:
    """Move the cursor to the task that asks the pending question of `description`."""
    prompt = pending_of(scene, description)
    await move_to(app, pilot, prompt.task_id)
    return prompt


async def test_one_column_inbox_first_then_the_tree(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        inbox, tree = app.query_one(Inbox), app.query_one("#tree-box")
        assert inbox.region.bottom <= tree.region.y  # above, not beside
        assert inbox.region.width >= 56 and tree.region.width >= 56
        assert "Fetch 14 pages from vendor sites?" in "\n".join(
            str(line.text) for line in inbox.render_lines(inbox.region.reset_offset))
        assert not app.query_one("#detail-box").display
        # rows are few: no bar for a row that asks nothing, no empty notice line
        assert not app.query_one(PromptBar).display and not app.query_one("#notice-bar").display
        assert app.query_one(TouchBar).region.height == 2
        assert not app.query_one(Footer).display  # the buttons take its place
        assert shown_buttons(app) == ["a approve", "d deny", "r reply",
                                      "b next ?", "x abort", "i detail"]
        await pilot.click("#touch-detail")  # the detail on demand
        await pilot.pause()
        detail = app.query_one("#detail-box")
        assert detail.display and detail.region.height >= 5
        assert detail.region.bottom <= tree.region.y
        assert app.query_one(TaskTree).has_focus  # a tap never takes the keys away


async def test_wider_screens_keep_the_footer_and_no_buttons(scene: Scene) -> None:
    async with dashboard(scene, size=(80, 24)) as (app, _pilot):
        assert not app.query_one(TouchBar).display and app.query_one(Footer).display


async def test_tapping_approve_answers_the_highlighted_question(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        prompt = await at_question(app, pilot, scene)
        await pilot.click("#touch-approve")
        done = await answered(scene, prompt)
        assert (done.answer, done.verdict) == ("approve", Verdict.APPROVED)


async def test_tapping_deny_a_reason_then_send(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        prompt = await at_question(app, pilot, scene)
        await pilot.click("#touch-deny")
        await pilot.pause()
        assert shown_buttons(app) == ["⏎ send", "esc cancel"]
        await pilot.press(*"too dear")
        await pilot.click("#touch-send")
        done = await answered(scene, prompt)
        assert (done.answer, done.reason, done.verdict) == ("deny", "too dear", Verdict.DENIED)
        await until(lambda: shown_buttons(app)[0] == "a approve", what="the usual buttons")


async def test_tapping_cancel_closes_the_box_and_answers_nothing(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        prompt = await at_question(app, pilot, scene)
        await pilot.click("#touch-reply")
        await pilot.press(*"maybe")
        await pilot.click("#touch-cancel")
        await pilot.pause()
        assert not app.query_one(PromptBar).has_class("-typing")
        assert app.query_one(TaskTree).has_focus
        assert scene.registry is not None
        assert scene.registry.get_prompt(prompt.id).state is PromptState.PENDING


async def test_tapping_abort_asks_then_yes_aborts(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        research = scene.ids[RESEARCH]
        await move_to(app, pilot, research)
        await pilot.click("#touch-abort")
        await pilot.pause()
        assert shown_buttons(app) == ["y abort", "n keep"]
        await pilot.click("#touch-yes")
        assert scene.registry is not None
        await until(lambda: scene.registry.get(research).status.is_ended, what="the abort")


async def test_tapping_a_question_in_the_inbox_goes_to_its_task(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        prompt = pending_of(scene, FETCH)
        inbox = app.query_one(Inbox)
        line = next(y for y in range(inbox.region.height)
                    if "Fetch 14 pages" in inbox.render_line(y).text)
        await pilot.click(Inbox, offset=(4, line))
        await until(lambda: app.query_one(TaskTree).cursor_id == prompt.task_id,
                    what="the cursor on the asking task")
        await settle(app, pilot)
        assert app.query_one(PromptBar).display


Compare = Callable[..., bool]


def test_phone_snapshot(snap_compare: Compare, scene: Scene) -> None:
    """A phone's browser (41x46) after `b`: the inbox of three questions on top, the tree
    below it (#3 highlighted), the prompt bar with its question and keys, the status bar
    `● live ? 3 asking 118k tok`, and two rows of buttons: a approve, d deny, r reply /
    b next ?, x abort, i detail; no footer."""
    assert snap_compare(deck(scene), terminal_size=(41, 46), run_before=run_before(scene, "b"))


def test_narrow_deny_snapshot(snap_compare: Compare, scene: Scene) -> None:
    """60x30 after `b d` and a reason typed: the reason box in the prompt bar, and only
    two buttons left, ⏎ send and esc cancel."""
    assert snap_compare(deck(scene), terminal_size=PHONE,
                        run_before=run_before(scene, "b", "d", *"not now"))


async def test_a_question_with_more_choices_gets_a_button_each(scene: Scene) -> None:
    async with dashboard(scene, PHONE) as (app, pilot):
        prompt = await at_question(app, pilot, scene,
                                   "Investigate memory growth in the ingest worker")
        assert shown_buttons(app)[6:] == ["1 main", "2 release/2.4", "3 cancel"]
        await pilot.click("#touch-choice-2")
        done = await answered(scene, prompt)
        assert done.answer == "release/2.4"
        await move_to(app, pilot, pending_of(scene, FETCH).task_id)  # two choices: none
        assert len(shown_buttons(app)) == 6
