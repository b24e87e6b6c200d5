"""The dashboard driven by Pilot over a real daemon: tree, answers, aborts, filter, reconnect."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

from core import protocol as p
from core.client import Client, ConnectionState
from core.model import EndReason, PromptState, TaskStatus
from tests.support import until
from tests.tui.conftest import SIZE, deck, move_to, pending_of, ready, row_of, rows, settle
from tui.app import make_app, run_dashboard
from tui.help import HelpScreen
from tui.modes import Mode
from tui.screenshots.scene import REPRODUCE, RESEARCH, Scene
from tui.widgets.bars import ConfirmBar, PromptBar
from tui.widgets.panes import DetailPane, Inbox
from tui.widgets.task_tree import TaskTree


async def test_tree_fills_from_the_snapshot(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        assert sorted(r.task_id for r in app.view.rows) == sorted(scene.ids.values())
        assert "? #3 demo  Run `pytest tests/test_parser.py -…  [a/d/r]" in row_of(app, 3)
        assert "✓ #4 demo" in row_of(app, 4)
        assert "✗ #7 demo" in row_of(app, 7)
        assert "○ #13 shell" in row_of(app, 13)
        # Own tokens, then the subtree total (the root's 4,040 own + its sub-tasks').
        subtree = scene.registry.subtree_tokens(1)
        assert row_of(app, 1).endswith(f"4.0k  {subtree / 1000:.1f}k")
        inbox = app.query_one(Inbox)
        assert inbox.border_title == "Inbox (3)"
        first = str(inbox.get_option_at_index(0).prompt)
        assert "demo#1 › demo#2 › demo#3" in first


async def test_live_events_update_rows(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        bump = scene.ids["Refactor auth middleware to async"]
        scene.registry.add_tokens(bump, 40_000, 0)
        await until(lambda: "47.0k" in row_of(app, bump), what="the token count to move")
        scene.release(bump, "deps bumped")
        await until(lambda: f"✓ #{bump} demo" in row_of(app, bump), what="the row to finish")
        # The freed slot starts the queued task.
        await until(lambda: "▶ #13 shell" in row_of(app, 13))
        new = scene.registry.submit("worker", "A task submitted while watching")
        await until(lambda: new.id in app.view.index, what="the new task's row")
        assert "A task submitted while watching" in row_of(app, new.id)
        assert app.view.counts[TaskStatus.FINISHED] == 4


async def test_b_then_a_approves_as_the_dashboard(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await pilot.press("b")
        assert app.query_one(TaskTree).cursor_id == prompt.task_id
        assert app.query_one(PromptBar).asking  # the bar shows its question
        await pilot.press("a")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: registry.get_prompt(prompt.id).state is PromptState.ANSWERED)
        answered = registry.get_prompt(prompt.id)
        assert answered.answer == "approve"
        assert answered.answered_by is not None and answered.answered_by.startswith("tui:")
        await until(lambda: ("information", "approved #3: approve") in app.notices)
        await until(lambda: "▶ #3 demo" in row_of(app, 3))


async def test_b_cycles_through_blocked_tasks(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        tree = app.query_one(TaskTree)
        seen = []
        for _ in range(4):
            await pilot.press("b")
            seen.append(tree.cursor_id)
        assert seen == [3, 8, 9, 3]


async def test_r_sends_free_text(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await pilot.press("b", "r")
        assert app.focused is not None and app.focused.id == "prompt-input"
        await pilot.press(*"only the http tests", "enter")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: registry.get_prompt(prompt.id).state is PromptState.ANSWERED)
        assert registry.get_prompt(prompt.id).answer == "only the http tests"
        assert app.focused is app.query_one(TaskTree)


async def test_esc_cancels_an_answer(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await pilot.press("b", "r", *"oops", "escape")
        assert app.mode is Mode.NORMAL
        assert app.focused is app.query_one(TaskTree)
        assert scene.registry is not None
        assert scene.registry.get_prompt(prompt.id).state is PromptState.PENDING


async def test_number_picks_a_choice(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Investigate memory growth in the ingest worker")
        await move_to(app, pilot, prompt.task_id)
        row = row_of(app, prompt.task_id)
        assert "Which branch" in row and "[a/d/1-3/r]" in row
        await pilot.press("4")  # there is no fourth choice: nothing is sent
        await pilot.press("2")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: registry.get_prompt(prompt.id).state is PromptState.ANSWERED)
        assert registry.get_prompt(prompt.id).answer == "release/2.4"
        await until(lambda: ("information", "answered #9: chose “release/2.4”") in app.notices)


async def test_answer_keys_on_a_row_not_asking_say_so_and_send_nothing(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        running = scene.ids["Refactor auth middleware to async"]
        await move_to(app, pilot, running)
        for key in ("a", "d", "r", "2", "e"):
            await pilot.press(key)
            assert app.notices[-1] == (
                "warning", f"#{running} is not asking; b jumps to the next question")
            assert app.mode is Mode.NORMAL
        assert f"#{running} is not asking" in str(app.query_one("#notice-bar").render())
        assert scene.registry is not None
        assert len(scene.registry.pending_prompts()) == 3
        await move_to(app, pilot, scene.ids["Investigate memory growth in the ingest worker"])
        await pilot.press("4")  # the branch question offers three choices
        assert app.notices[-1] == ("warning", "#9 offers 3 choices: keys 1-3")
        assert len(scene.registry.pending_prompts()) == 3


async def test_x_y_aborts_the_subtree(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        root = scene.ids[RESEARCH]
        await move_to(app, pilot, root)
        await pilot.press("x")
        confirm = app.query_one(ConfirmBar)
        assert confirm.display
        assert "2 live tasks will stop" in str(confirm.render())
        await pilot.press("y")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: all(t.status.is_ended for t in registry.subtree(root)))
        assert registry.get(root).end_reason is EndReason.ABORTED
        writer = registry.get(scene.ids["Estimate hosting cost for 10M vectors"])
        assert writer.end_reason is EndReason.ABORTED
        assert registry.get(scene.ids["Survey pgvector HNSW tuning advice"]).status is TaskStatus.FINISHED
        await until(lambda: ("information", f"aborted #{root}: 2 tasks stopped") in app.notices)
        assert not confirm.display


async def test_shift_x_aborts_only_the_task_and_n_keeps(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        coder = scene.ids[REPRODUCE]
        await move_to(app, pilot, coder)
        await pilot.press("X")
        assert "1 live task will stop" in str(app.query_one(ConfirmBar).render())
        await pilot.press("n")
        assert scene.registry is not None
        registry = scene.registry
        assert registry.get(coder).status is TaskStatus.IN_PROGRESS
        await pilot.press("X", "y")
        await until(lambda: registry.get(coder).status is TaskStatus.FAILED)
        assert registry.get(scene.ids["Write tests for tokenizer edge cases"]).status is TaskStatus.BLOCKED


async def test_stale_answer_shows_the_daemons_error(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await pilot.press("b", "r", *"yes please")
        assert scene.registry is not None
        scene.registry.answer(prompt.id, "deny", by="cli:alice@laptop")
        await pilot.press("enter")
        await until(lambda: any(sev == "error" for sev, _ in app.notices))
        [text] = [text for sev, text in app.notices if sev == "error"]
        assert text.startswith("#3 not answered: ")
        assert "already answered 'deny' by cli:alice@laptop" in text
        assert scene.registry.get_prompt(prompt.id).answer == "deny"


async def test_new_prompt_rings_the_bell(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert app.bells == 0
        assert scene.registry is not None
        task = scene.registry.open_external("Clean up", agent="janitor")
        scene.registry.open_prompt(task.id, "Delete the cache?")
        await until(lambda: app.bells == 1, what="the bell")
        assert any("Delete the cache?" in text for _, text in app.notices)
        await until(lambda: app.query_one(Inbox).border_title == "Inbox (4)")


async def test_filter_and_hide_finished(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("slash", *"qdrant")
        shown = [r.task_id for r in app.view.rows]
        assert shown == [5, 7]  # the match and its ancestor
        await pilot.press("enter")
        assert app.focused is app.query_one(TaskTree)
        assert [r.task_id for r in app.view.rows] == [5, 7]
        await pilot.press("escape")
        assert len(app.view.rows) == 13
        await pilot.press("f")
        visible = {r.task_id for r in app.view.rows}
        assert scene.ids["Add a regression test for issue #412"] not in visible
        assert scene.ids["Add rate limiting to the public API"] not in visible
        assert scene.ids[RESEARCH] in visible
        await pilot.press("f")
        assert len(app.view.rows) == 13


async def test_enter_folds_a_subtree(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("enter")  # on the first root
        assert [r.task_id for r in app.view.rows][:2] == [1, 5]
        assert "(+3)" in row_of(app, 1)
        await pilot.press("enter")
        assert len(app.view.rows) == 13


async def test_h_on_a_leaf_goes_to_its_parent_then_folds_it_and_l_unfolds(
    scene: Scene,
) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        tree = app.query_one(TaskTree)
        await move_to(app, pilot, 3)  # a leaf under #2 under #1
        await pilot.press("h")
        assert tree.cursor_id == 2 and len(app.view.rows) == 13
        await pilot.press("h")
        assert 3 not in app.view.index and "▸" in row_of(app, 2)
        await pilot.press("l")
        assert 3 in app.view.index and len(app.view.rows) == 13
        await pilot.click(TaskTree, offset=(10, app.view.index[2]), times=2)
        assert 3 not in app.view.index  # a double click folds too


async def test_help_lists_every_key(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        listed: set[str] = set()
        for line in text.splitlines():
            if line.startswith("  "):
                column = line[2:20].strip()
                listed |= {k.strip() for part in column.split(",") for k in part.split(" / ")}
        contract = {"j", "k", "↓", "↑", "enter", "b", "a", "d", "1 – 9", "r", "x", "X", "y", "n",
                    "/", "?", "q", "f", "ctrl+p"}
        assert contract <= listed, contract - listed
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_detail_shows_the_prompt_history(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("b", "a")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: not registry.get(3).status is TaskStatus.BLOCKED)
        await settle(app, pilot)
        await until(lambda: "→ approve" in str(app.query_one(DetailPane).render()))
        text = str(app.query_one(DetailPane).render())
        assert "Run `pytest tests/test_parser.py -x -p no:randomly`?" in text
        assert "by tui:" in text
        assert "690 own" in text


async def test_daemon_restart_shows_disconnected_then_resyncs(runtime_dir: Path) -> None:
    scene = Scene(runtime_dir, heartbeat=0.05)
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await scene.stop_daemon()
        status = app.query_one("#status-connection")
        await until(lambda: "disconnected" in str(status.render()), what="disconnected shown")
        assert scene.registry is not None
        new = scene.registry.submit("worker", "Submitted while the dashboard was away")
        await scene.start_daemon()
        await until(lambda: app.connection is ConnectionState.LIVE and new.id in app.view.index,
                    timeout=10, what="live again with the new task")
        assert "Submitted while the dashboard was away" in row_of(app, new.id)
        await until(lambda: "live" in str(app.query_one("#status-connection").render()))


async def test_two_thousand_tasks_all_get_rows(runtime_dir: Path) -> None:
    scene = Scene(runtime_dir, steps=())
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        parents = [scene.registry.submit("worker", f"batch {n}") for n in range(20)]
        for n in range(1980):
            scene.registry.submit("worker", f"item {n}", parent_id=parents[n % 20].id)
        await until(lambda: len(app.view.rows) == 2000, what="2,000 rows")
        assert app.view.counts[TaskStatus.QUEUED] == 1998
        await pilot.press("G")
        assert app.query_one(TaskTree).cursor_id == scene.registry.list(limit=1)[0].id
        await until(lambda: "item 1979" in rows(app)[-1], timeout=15,
                    what="the view to scroll to the end")


async def test_command_palette_offers_deck_actions(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await move_to(app, pilot, scene.ids["Refactor auth middleware to async"])
        await pilot.press("ctrl+p", *"abort task")

        def offered() -> list[str]:
            if not isinstance(app.screen, CommandPalette):
                return []
            hits = app.screen.query_one(CommandList)
            return [str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count)]

        await until(lambda: any("Abort task…" in hit for hit in offered()), what="the command")
        await pilot.press("enter")
        await until(lambda: app.mode is Mode.CONFIRM)
        assert "1 live task will stop" in str(app.query_one(ConfirmBar).render())


def test_without_a_daemon_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_dashboard(tmp_path / "none") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no daemon running" in err
    assert "Traceback" not in err


async def test_app_exits_cleanly_when_sync_fails(runtime_dir: Path) -> None:
    runtime_dir.mkdir(parents=True)
    app = make_app(runtime_dir)
    async with app.run_test(size=SIZE):
        await until(lambda: app.failure is not None)
    assert app.failure == f"no daemon running (no connection file in {runtime_dir})"
    assert app.return_code == 2


async def test_a_connect_cancelled_before_the_app_mounted_ends_at_once() -> None:
    """The app left before its widgets were mounted (they never will be): the connect
    worker, cancelled, must end, not wait for the mount forever."""
    connecting = asyncio.Event()

    @asynccontextmanager
    async def never_answers() -> AsyncIterator[Client]:
        connecting.set()
        await asyncio.Event().wait()  # a daemon that never answers
        yield  # type: ignore[misc]

    app = make_app(connect=never_answers)
    start = asyncio.create_task(app._start())  # as `on_load` runs it
    await asyncio.wait_for(connecting.wait(), 5)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(start, 5)


async def test_detail_shows_who_answered_and_aborted(runtime_dir: Path, tmp_path: Path) -> None:
    scene = Scene(runtime_dir, journal_path=tmp_path / "journal.sqlite3")
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        detail = app.query_one(DetailPane)
        assert "decisions" not in str(detail.render())  # nothing decided yet
        await pilot.press("b", "a")
        await until(lambda: "answered approve" in str(detail.render()),
                    what="the answer in the detail pane")
        assert app.client is not None
        assert f"by tui:{app.client.origin.user}@" in str(detail.render())
        assert f"ago · pid {os.getpid()}" in str(detail.render())
        # Abort the researcher's subtree from the dashboard: the writer it ended, asking
        # until then, shows that decision as its ancestor's.
        researcher, writer = scene.ids[RESEARCH], scene.ids[
            "Estimate hosting cost for 10M vectors"]
        await move_to(app, pilot, researcher)
        await pilot.press("x", "y")
        await until(lambda: "aborted subtree: ended" in str(detail.render()),
                    what="the abort in the researcher's pane")
        await move_to(app, pilot, writer)
        await until(lambda: f"aborted via #{researcher} (subtree: ended" in str(detail.render()),
                    what="the ancestor's abort in the writer's pane")
        assert f"ended {researcher}, {writer})" in str(detail.render())
        assert not [n for n in app.notices if n[0] == "error"]


async def test_without_a_journal_the_pane_shows_no_decisions_and_asks_once(
    scene: Scene,
) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("b", "a")
        detail = app.query_one(DetailPane)
        await until(lambda: "→ approve" in str(detail.render()), what="the answer")
        assert "decisions" not in str(detail.render())
        assert scene.daemon is not None
        service = scene.daemon.service
        handle = service.handle
        ops: list[str] = []

        def recording(payload: list[bytes], curve_key: str | None = None):
            ops.append(str((p.peek(payload[0]).get("body") or {}).get("op")) if payload else "?")
            return handle(payload, curve_key)

        service.handle = recording  # type: ignore[method-assign]
        target = scene.ids["Add a regression test for issue #412"]
        await move_to(app, pilot, target)
        await until(lambda: "get" in ops, what=f"the task's get, not {ops}")
        await app.workers.wait_for_complete()  # the fetch that would ask `history` next
        assert "history" not in ops  # nothing to read without a journal: never asked again
        assert not [n for n in app.notices if n[0] == "error"]


async def test_b_and_the_inbox_reveal_a_folded_or_filtered_asker(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        tree = app.query_one(TaskTree)
        await pilot.press("enter")  # fold planner #1: shell #3 loses its row
        assert 3 not in app.view.index
        await pilot.press("tab", "tab")  # the tree, the detail pane, the inbox
        assert app.focused is app.query_one(Inbox)
        await pilot.press("enter")  # the oldest question: shell #3's
        assert tree.cursor_id == 3 and app.focused is tree
        assert "? #3 demo" in row_of(app, 3)
        await pilot.press("slash", *"qdrant", "enter")
        assert [r.task_id for r in app.view.rows] == [5, 7]
        await pilot.press("b")  # the next asker is filtered away: the filter goes
        assert tree.cursor_id == 8
        assert app.view.filter_text == ""
        assert not app.query_one("#filter-bar").display
        assert "filter" not in str(app.query_one("#tree-box").border_title)
