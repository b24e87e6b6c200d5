"""What a person sees around the tree: notices that hide nothing, 80x24, the empty deck."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Footer
from textual.widgets._toast import Toast

from tests.support import until
from tests.tui.conftest import SIZE, deck, move_to, ready, row_of, rows
from tui.screenshots.scene import RESEARCH, Scene
from tui.widgets.bars import ConfirmBar, PromptBar


async def test_notices_cover_neither_the_tree_nor_the_panes(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        task = scene.registry.open_external("Clean up", agent="janitor")
        scene.registry.open_prompt(task.id, "Delete the cache?")
        await until(lambda: app.bells == 1, what="the announcement")
        await pilot.press("b")
        await pilot.pause()
        notice = app.query_one("#notice-bar")
        assert notice.display and "Delete the cache?" in str(notice.render())
        assert not list(app.screen.query(Toast))  # nothing floats over the screen
        for covered in ("#tree-box", "#detail-box", "#inbox", "#prompt-bar"):
            assert not notice.region.overlaps(app.query_one(covered).region), covered
        # The time and token columns of every row stay in view.
        assert row_of(app, task.id).rstrip().endswith("0      0")


async def test_ctrl_c_says_how_to_quit_in_words_not_markup(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("ctrl+c")
        await until(lambda: app.notices, what="a notice")
        text = app.notices[-1][1]
        assert "[b]" not in text and "quit" in text
        assert "[b]" not in str(app.query_one("#notice-bar").render())


async def test_80_by_24_rows_show_their_questions(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert "? #8 demo  Fetch 14 pages from vendor sites?  [a/d/r]" in row_of(app, 8)
        assert "Which branch should I base the" in row_of(app, 9)
        assert all(len(line) <= 78 for line in rows(app))
        await pilot.press("b")
        bar = app.query_one(PromptBar)
        assert bar.display and bar.region.bottom <= 22  # above the status bar and footer
        await pilot.press("i")  # the detail pane, hidden at this width, comes back
        await pilot.pause()
        assert app.query_one("#side").display and app.query_one("#detail-box").region.width > 0


async def test_a_move_onto_or_off_a_question_moves_nothing_else(scene: Scene) -> None:
    """The prompt bar keeps its place and height whether the highlighted row asks or not,
    and the notice line whether it has something to say, so the tree and panes keep theirs
    and the footer its keys: a bar that came and went redrew the whole screen each time."""
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        bar = app.query_one(PromptBar)

        def places() -> dict[str, object]:
            return {part: app.query_one(part).region for part in
                    ("#tree-box", "#side", "#notice-bar", "#prompt-bar", "#status-bar")}

        def said() -> str:
            return "\n".join(str(app.query_one(part).render())
                             for part in ("#prompt-question", "#prompt-keys"))

        await move_to(app, pilot, 2)  # running, asks nothing
        assert not bar.asking and "#2 demo  Reproduce the flaky failure" in said()
        assert "b  jumps to the next one" in said()
        before, keys = places(), list(app.query_one(Footer).children)
        await move_to(app, pilot, 3)  # asks a question
        assert bar.asking and "Run `pytest tests/test_parser.py -x -p no:randomly`?" in said()
        assert "reply with text" in said()
        assert places() == before
        assert list(app.query_one(Footer).children) == keys  # not composed anew
        await move_to(app, pilot, 2)
        assert not bar.asking and places() == before
        await pilot.press("a")  # a notice comes, on the line kept for it
        await until(lambda: "#2 is not asking" in str(app.query_one("#notice-bar").render()),
                    what="the notice")
        assert places() == before


async def test_the_abort_bar_is_one_line_at_120_columns(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(app, pilot)
        await move_to(app, pilot, scene.ids[RESEARCH])
        await pilot.press("x")
        await pilot.pause()
        confirm = app.query_one(ConfirmBar)
        assert confirm.region.height == 1
        text = str(confirm.render())
        assert "“Research: compare vector DBs" in text and "2 live tasks will stop" in text


async def test_a_child_ask_row_says_its_question_once(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=(140, 40)) as pilot:  # room for a description too
        await ready(app, pilot)
        assert scene.registry is not None
        # What `taskdeck ask "Deploy preview?" --parent 1` makes: a task named by its question.
        task = scene.registry.open_external("Deploy preview?", agent="ask", parent_id=1)
        scene.registry.open_prompt(task.id, "Deploy preview?")
        await until(lambda: task.id in app.view.index, what="the row")
        await until(lambda: "?" in row_of(app, task.id).split(f"#{task.id}")[0])
        assert row_of(app, task.id).count("Deploy previ") == 1


async def test_the_empty_deck_says_what_to_do_first(runtime_dir: Path) -> None:
    app = deck(Scene(runtime_dir, steps=()))
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        text = "\n".join(rows(app))
        assert "No tasks yet" in text
        for command in ("taskdeck demo", "taskdeck submit shell", 'taskdeck ask "Deploy?"'):
            assert command in text
        await pilot.press("slash", *"nothing")
        await until(lambda: "No task matches “nothing”" in "\n".join(rows(app)))
