"""SVG snapshots of the dashboard's main views over the scripted scene (fixed clock, no blink)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot

from core.model import Question
from tests.support import until
from tests.tui.test_actions import EDIT
from tests.tui.conftest import SIZE, deck, ready, settle
from tests.tui.test_keys import HEREDOC
from tui.screenshots.scene import Scene
from tui.widgets.panes import DetailPane, Inbox

Compare = Callable[..., bool]


def run_before(app_scene: Scene, *keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """Wait for the scene to be on screen, then press keys and let the screen settle."""

    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await ready(app, pilot)  # type: ignore[arg-type]
        if keys:
            await pilot.press(*keys)
        await settle(app, pilot)  # type: ignore[arg-type]

    return before


def test_populated_tree(snap_compare: Compare, scene: Scene) -> None:
    """The whole scene, the demo's story: two trees and single tasks in every status
    (queued ○, running ▶, asking ?, waiting for sub-tasks ◐, done ✓, failed ✗ incl. one
    aborted); asking rows show their question and answer keys; time, own and subtree tokens
    on the right; detail pane of #1; inbox with three questions and their ancestor paths;
    status bar `● live`, counts 1 queued 2 running 2 waiting 3 done 2 failed, `? 3 asking`,
    118k tok. The prompt bar, in its quiet colours, shows #1 (the highlighted row asks
    nothing): "◐ #1 demo  Fix flaky test in tests/test_parser.py", "waiting on its
    sub-tasks", and "no question on this row  b  jumps to the next one"."""
    assert snap_compare(deck(scene), terminal_size=SIZE, run_before=run_before(scene))


def test_inline_prompt_open(snap_compare: Compare, scene: Scene) -> None:
    """After `b` then `r`: cursor on #3, the yellow prompt bar shows its question
    "Run `pytest tests/test_parser.py -x -p no:randomly`?" with the path demo#1 › demo#2 ›
    demo#3, then who asks "demo#3: Write tests for tokenizer edge cases", and the inline
    box "reply ›" holds the typed text "only the tokenizer tests"; the footer offers only
    ⏎ send and esc cancel."""
    assert snap_compare(
        deck(scene), terminal_size=SIZE,
        run_before=run_before(scene, "b", "r", *"only the tokenizer tests"),
    )


def test_abort_confirmation(snap_compare: Compare, scene: Scene) -> None:
    """Cursor on #5 after `x`: the red bar reads, on one line, "Abort #5 demo “Research:
    compare vector DBs for 10M embeddings” and its sub-tasks: 2 live tasks will stop." with
    y / n keys; the footer shows only y, n, help, quit."""
    assert snap_compare(
        deck(scene), terminal_size=SIZE,
        run_before=run_before(scene, "j", "j", "j", "j", "x"),
    )


def test_help(snap_compare: Compare, scene: Scene) -> None:
    """`?` opens the centred help: keys grouped Move / Answer / Abort / View, then what the
    status bar and row icons mean; the main screen is dimmed behind it."""
    assert snap_compare(
        deck(scene), terminal_size=SIZE, run_before=run_before(scene, "question_mark")
    )


def test_disconnected(snap_compare: Compare, runtime_dir: Path) -> None:
    """The daemon stopped: the status bar shows a red `✗ disconnected`; the tree still shows
    the last known state (13 tasks) while the client keeps trying to reconnect."""
    scene = Scene(runtime_dir, heartbeat=0.1)
    app = deck(scene)

    async def before(pilot: Pilot) -> None:
        await ready(app, pilot)
        await scene.stop_daemon()
        status = app.query_one("#status-connection")
        await until(lambda: "disconnected" in str(status.render()), what="disconnected shown")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_filter(snap_compare: Compare, scene: Scene) -> None:
    """`/` then "bench": the filter line at the bottom holds "bench"; the tree shows only
    #5 (ancestor) and the failed "Summarise Qdrant benchmark results" #7; the tree title
    says filter “bench”; the prompt bar above the filter line shows #5, which asks
    nothing."""
    assert snap_compare(
        deck(scene), terminal_size=SIZE, run_before=run_before(scene, "slash", *"bench")
    )


def test_long_question_is_marked(snap_compare: Compare, scene: Scene) -> None:
    """A six-line heredoc question on a new task, highlighted: the prompt bar shows its
    first two lines, then a reversed yellow line "… 4 more lines not shown — e to expand
    (a waits until you have seen them)"; the row flags "[6 lines]"; the notice line under
    the tree announces the question (nothing floats over the columns)."""
    app = deck(scene)

    async def before(pilot: Pilot) -> None:
        await ready(app, pilot)
        assert scene.registry is not None
        task = scene.registry.open_external("Roll out web", agent="deployer")
        scene.registry.open_prompt(task.id, HEREDOC)
        await until(lambda: task.id in app.view.index, what="the asking row")
        await pilot.press("G")
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_80_by_24(snap_compare: Compare, scene: Scene) -> None:
    """80x24 after `b`: the tree takes the whole width (detail and inbox hidden, `i` brings
    them back), asking rows show their questions and keys, the prompt bar the whole
    question, the status bar its counts without the sparkline."""
    assert snap_compare(deck(scene), terminal_size=(80, 24), run_before=run_before(scene, "b"))


def test_empty_deck(snap_compare: Compare, runtime_dir: Path) -> None:
    """A daemon with no tasks: the tree says "No tasks yet" and lists taskdeck demo,
    taskdeck submit shell and taskdeck ask "Deploy?" with what each does; the prompt bar
    keeps its place: "no task highlighted", and that questions show there."""
    scene = Scene(runtime_dir, steps=())
    assert snap_compare(deck(scene), terminal_size=SIZE, run_before=run_before(scene))


def test_an_edit_action_shows_a_diff(snap_compare: Compare, scene: Scene) -> None:
    """A Claude Edit asking leave, highlighted: the bar shows the question with
    "claude · Edit  in /repo" and the path, cut with the reversed "5 more lines" mark;
    the detail pane, scrolled to its end, shows the whole diff (removed lines red, added
    green); the inbox, scrolled to its end, reads "claude · 5f1c2e9a… · Edit
    /repo/core/config.py" under the question."""
    app = deck(scene)

    async def before(pilot: Pilot) -> None:
        await ready(app, pilot)
        assert scene.registry is not None
        task = scene.registry.open_external("claude session", agent="claude")
        scene.registry.open_prompt(task.id, Question(text="Edit the config?", action=EDIT))
        await until(lambda: task.id in app.view.index, what="the asking row")
        await pilot.press("G")
        await until(lambda: "+BACKOFF" in str(app.query_one(DetailPane).render()),
                    what="the diff in the detail pane")
        await settle(app, pilot)
        app.query_one("#detail-box").scroll_end(animate=False, immediate=True)
        app.query_one(Inbox).scroll_end(animate=False, immediate=True)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
