"""What a key decides: replies are not approvals, keys land where they were typed, long
questions are read before they are approved, the cursor never lands on a question by itself."""

from __future__ import annotations

import pytest

from core.model import PromptState, TaskStatus, Verdict
from tests.support import until
from tests.tui.conftest import (
    SIZE,
    answered,
    burst,
    deck,
    move_to,
    pending_of,
    ready,
    row_of,
    settle,
    type_keys,
)
from tui.modes import Mode
from tui.screenshots.scene import Scene
from tui.widgets.bars import PromptBar
from tui.widgets.panes import DetailPane
from tui.widgets.task_tree import TaskTree

HEREDOC = (
    "Run this?\n"
    "cat <<'EOF' > deploy.sh\n"
    "kubectl --context staging get pods\n"
    "kubectl --context prod apply -f web.yaml\n"
    "kubectl --context prod rollout status deploy/web\n"
    "EOF"
)
"""A question whose dangerous line is the fourth: the one a three-line bar used to hide."""


# ------------------------------------------------------------ a reply is not an approval


async def test_a_typed_no_is_sent_and_shown_as_a_reply(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await pilot.press("b", "r", *"no", "enter")
        assert (await answered(scene, prompt)).verdict is Verdict.REPLIED
        notice = "replied to #3: “no” (sent as a reply, not an approval)"
        await until(lambda: ("information", notice) in app.notices, what="the reply notice")
        assert not any("approved" in text for _, text in app.notices)
        detail = app.query_one(DetailPane)
        await until(lambda: "↩ replied “no”" in str(detail.render()), what="the reply shown")
        assert "→ no" not in str(detail.render())
        assert scene.registry is not None
        task = scene.registry.get(prompt.task_id)
        # Shown in the pane's plain colour: neither the approval's green nor a denial's red.
        assert ("    ↩ replied “no”", "") in detail._render_task(task)


async def test_approve_and_deny_read_as_what_they_decided(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        fetch = pending_of(scene, "Estimate hosting cost for 10M vectors")
        await move_to(app, pilot, fetch.task_id)
        await pilot.press("d", *"costs too much", "enter")
        await until(lambda: ("information", "denied #8: deny (costs too much)") in app.notices)
        await move_to(app, pilot, 3)
        await pilot.press("a")
        await until(lambda: ("information", "approved #3: approve") in app.notices)


# ------------------------------------------- keys typed in a burst land where they were typed


@pytest.mark.parametrize("paced", [True, False], ids=["pilot-press", "burst"])
async def test_d_then_a_reason_then_enter_denies_with_that_reason(
    scene: Scene, paced: bool
) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Estimate hosting cost for 10M vectors")
        await move_to(app, pilot, prompt.task_id)
        await type_keys(app, pilot, ("d", *"too risky", "enter"), paced=paced)
        denied = await answered(scene, prompt)
        assert (denied.answer, denied.reason, denied.verdict) == (
            "deny", "too risky", Verdict.DENIED)


@pytest.mark.parametrize("paced", [True, False], ids=["pilot-press", "burst"])
async def test_b_r_and_a_reply_in_one_burst_reply_to_the_question_b_found(
    scene: Scene, paced: bool
) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        prompt = pending_of(scene, "Write tests for tokenizer edge cases")
        await type_keys(app, pilot, ("b", "r", *"hello there", "enter"), paced=paced)
        assert (await answered(scene, prompt)).answer == "hello there"
        assert not [text for _, text in app.notices if "type a reply first" in text]
        await until(lambda: app.mode is Mode.NORMAL and app.focused is app.query_one(TaskTree))


async def test_slash_and_a_filter_in_one_burst_filter(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await burst(app, pilot, "/", *"failed")
        await until(lambda: app.view.filter_text == "failed", what="the whole filter")
        await until(lambda: [r.task_id for r in app.view.rows] == [5, 7, 10])
        assert app.query_one("#filter-input").value == "failed"  # type: ignore[attr-defined]


async def test_j_then_a_in_one_burst_acts_on_the_row_j_reached(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await move_to(app, pilot, 7)  # the failed task just above the fetch question
        await burst(app, pilot, "j", "a")
        assert scene.registry is not None
        registry = scene.registry
        await until(lambda: registry.get(8).status is not TaskStatus.BLOCKED,
                    what="#8 approved")
        assert registry.get(3).status is TaskStatus.BLOCKED


# ------------------------------------------------------------------ long questions


def asking_row_shown(app, task_id: int) -> bool:
    """The task's row is drawn with its question (task and prompt may land a frame apart)."""
    return task_id in app.view.index and " lines] " in row_of(app, task_id)


async def test_a_long_question_is_cut_with_a_mark_and_approved_only_once_read(
    scene: Scene,
) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        registry = scene.registry
        task = registry.open_external("Roll out web", agent="deployer")
        prompt = registry.open_prompt(task.id, HEREDOC)
        await until(lambda: asking_row_shown(app, task.id), what="the asking row")
        assert "[6 lines] Run this? cat <<'EOF'" in row_of(app, task.id)
        await move_to(app, pilot, task.id)
        bar = app.query_one("#prompt-question")
        shown = str(bar.render())
        assert "kubectl --context prod apply" not in shown
        assert "… 4 more lines not shown — e to expand" in shown
        await pilot.press("a")
        assert registry.get_prompt(prompt.id).state is PromptState.PENDING
        assert app.notices[-1] == (
            "warning", f"#{task.id}'s question has 4 more lines you have not seen: e shows "
            "them; approve once you have read them")
        await pilot.press("1")  # the first choice by number is the same approval
        assert registry.get_prompt(prompt.id).state is PromptState.PENDING
        await pilot.press("e")
        shown = str(bar.render())
        assert "kubectl --context prod apply -f web.yaml" in shown
        assert "end of the question (6 lines) — e shortens it" in shown
        await pilot.press("e", "a")  # short again, but every line has been on screen
        await until(lambda: registry.get_prompt(prompt.id).verdict is Verdict.APPROVED)


async def test_deny_and_reply_need_no_reading_to_the_end(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        registry = scene.registry
        task = registry.open_external("Roll out web", agent="deployer")
        prompt = registry.open_prompt(task.id, HEREDOC)
        await until(lambda: asking_row_shown(app, task.id), what="the asking row")
        await move_to(app, pilot, task.id)
        await pilot.press("d", "enter")
        await until(lambda: registry.get_prompt(prompt.id).verdict is Verdict.DENIED)


async def test_e_pages_through_a_question_taller_than_half_the_screen(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert scene.registry is not None
        registry = scene.registry
        question = "\n".join(f"step {n}: kubectl apply -f part-{n}.yaml" for n in range(1, 31))
        task = registry.open_external("Apply 30 parts", agent="deployer")
        prompt = registry.open_prompt(task.id, question)
        await until(lambda: asking_row_shown(app, task.id), what="the asking row")
        await move_to(app, pilot, task.id)
        bar = app.query_one("#prompt-question")
        pages = 0
        while "end of the question" not in str(bar.render()):
            await pilot.press("e")
            pages += 1
            shown = str(bar.render())
            if "end of the question" not in shown:
                assert "more — e shows the next" in shown
                await pilot.press("a")
                assert registry.get_prompt(prompt.id).state is PromptState.PENDING
        assert pages >= 3  # 31 lines (with the path) at 11 a page
        assert "step 30: kubectl apply -f part-30.yaml" in str(bar.render())
        assert app.query_one(PromptBar).region.height < 24
        await pilot.press("a")
        await until(lambda: registry.get_prompt(prompt.id).verdict is Verdict.APPROVED)


# ------------------------------------------------------- the cursor and questions


async def test_typing_a_filter_never_puts_the_cursor_on_a_question(scene: Scene) -> None:
    """#12 leaves the rows as "fetch" is typed; the cursor goes to #5, not to #8's question,
    so the `a` typed after Enter approves nothing."""
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await move_to(app, pilot, scene.ids["Refactor auth middleware to async"])
        await burst(app, pilot, "/", *"fetch", "enter")
        await until(lambda: [r.task_id for r in app.view.rows] == [5, 8] and app.mode is Mode.NORMAL)
        await settle(app, pilot)
        assert app.query_one(TaskTree).cursor_id == 5
        await pilot.press("a")
        assert app.notices[-1] == ("warning", "#5 is not asking; b jumps to the next question")
        assert scene.registry is not None
        assert len(scene.registry.pending_prompts()) == 3


async def test_b_with_none_asking_names_the_tasks_waiting_on_sub_tasks(scene: Scene) -> None:
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        counts = app.query_one("#status-counts")
        assert "2 waiting" in str(counts.render()) and "blocked" not in str(counts.render())
        assert "? 3 asking" in str(app.query_one("#status-pending").render())
        assert scene.registry is not None
        for prompt in scene.registry.pending_prompts():
            scene.registry.answer(prompt.id, prompt.choices[0], by="test")
        await until(lambda: "? 0 asking" in str(app.query_one("#status-pending").render()))
        await pilot.press("b")
        assert app.notices[-1] == (
            "information", "no task is asking a question (2 wait on sub-tasks, which need no "
            "answer)")
