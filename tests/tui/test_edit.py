"""Editing an action's input before approving it: the `edit` choice opens the input as JSON
in the answer box, and what is sent is the edited input (in the answer's reason)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from textual.pilot import Pilot

from core.adapters.langgraph import arun_graph
from core.model import EDIT, Action, BlockedOn, BlockedReason, Question, Task, TaskStatus, Verdict
from tests.langgraph.graphs import one_request
from tests.support import until
from tests.tui.conftest import SIZE, answered, deck, move_to, ready, settle
from tui.app import DeckApp
from tui.modes import CloseAnswer, Mode, Modes, OpenAnswer, Say, Send
from tui.screenshots.scene import Scene
from tui.view import choice_hint, short_hint
from tui.widgets.bars import InlineInput

WRITE = Action(agent="langgraph", tool="write_file", input={"path": "/srv/a.txt", "text": "hi"})


def asking_edit(*choices: str) -> Task:
    return Task(id=5, agent="langgraph", description="run", status=TaskStatus.BLOCKED,
                blocked_reason=BlockedReason.PROMPT,
                blocked_on=BlockedOn(8, "Write?", list(choices or ("approve", EDIT, "deny"))))


# ------------------------------------------------------------------ the mode machine


def test_the_edit_choice_opens_the_input_as_json_and_enter_sends_it_edited() -> None:
    modes = Modes()
    assert modes.choose(asking_edit(), 2, action=WRITE) == (
        OpenAnswer(5, "edit write_file input (JSON)", '{"path": "/srv/a.txt", "text": "hi"}'),)
    assert modes.mode is Mode.EDIT and modes.mode.is_answering
    assert modes.submit_answer('{"path": "/srv/b.txt",  "text": "hi"}') == (
        Send(5, 8, EDIT, reason='{"path": "/srv/b.txt", "text": "hi"}'), CloseAnswer())
    assert modes.mode is Mode.NORMAL


def test_edited_input_that_is_no_json_object_is_not_sent_and_the_box_stays_open() -> None:
    modes = Modes()
    modes.choose(asking_edit(), 2, action=WRITE)
    [said] = modes.submit_answer('{"path": ')
    assert isinstance(said, Say) and said.text.startswith("not JSON")
    [said] = modes.submit_answer('["a"]')
    assert isinstance(said, Say) and "JSON object" in said.text
    assert modes.mode is Mode.EDIT
    assert modes.cancel_answer() == (CloseAnswer(),)


def test_edit_without_an_action_is_a_plain_choice_and_input_too_long_is_said() -> None:
    assert Modes().choose(asking_edit(), 2) == (Send(5, 8, EDIT),)
    huge = Action(agent="langgraph", tool="t", input={"text": "x" * 5000})
    modes = Modes()
    [said] = modes.choose(asking_edit(), 2, action=huge)
    assert isinstance(said, Say) and "too long to edit here" in said.text
    assert modes.mode is Mode.NORMAL


def test_d_does_not_send_an_edit_and_the_hints_offer_numbers_instead() -> None:
    task = asking_edit("approve", EDIT)
    [said] = Modes().open_answer(task, Mode.REASON)
    assert isinstance(said, Say) and "offers no denial" in said.text
    assert choice_hint(["approve", EDIT]) == "[a]pprove [1-2] [r]eply"
    assert short_hint(["approve", EDIT]) == "[a/1-2/r]"
    assert choice_hint(["approve", EDIT, "deny"]) == "[a]pprove [d]eny [1-3] [r]eply"


# ------------------------------------------------------------------ the dashboard


async def read_all(app: DeckApp, pilot: Pilot) -> None:
    """Page through the highlighted question with `e` until every line was on screen."""
    while "end of the question" not in str(app.query_one("#prompt-question").render()):
        await pilot.press("e")


async def test_a_person_edits_the_args_in_the_dashboard_and_the_graph_gets_them(
        scene: Scene) -> None:
    """A real graph's Agent Inbox request, answered in the dashboard: 2 (edit) opens its
    args, a typo is refused with a notice, the fixed JSON resumes the graph."""
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        run = asyncio.ensure_future(arun_graph(
            one_request(allow_accept=True, allow_edit=True, allow_ignore=True), {"log": []},
            {"configurable": {"thread_id": "t-dash"}}, runtime_dir=scene.runtime_dir))
        registry = scene.registry
        assert registry is not None
        await until(lambda: any(t.key == "langgraph:t-dash" and t.blocked_on
                                for t in app.view.mirror.tasks.values()),
                    timeout=15, what="the graph's question in the dashboard")
        [task] = [t for t in app.view.mirror.tasks.values() if t.key == "langgraph:t-dash"]
        await move_to(app, pilot, task.id)
        keys = str(app.query_one("#prompt-keys").render())
        assert "2  edit…" in keys and "d  deny" in keys
        await pilot.press("2")  # edit approves: it waits until the whole question was read
        assert "more lines you have not seen" in app.notices[-1][1]
        await read_all(app, pilot)
        await pilot.press("2")
        box = app.query_one("#prompt-input", InlineInput)
        assert app.mode is Mode.EDIT and app.focused is box
        assert box.value == '{"path": "/srv/a.txt", "text": "hi"}'
        await pilot.press("left", "left", "backspace", "backspace", *"bye", "end", "x", "enter")
        assert "not JSON" in app.notices[-1][1] and app.mode is Mode.EDIT  # the stray x
        await pilot.press("backspace", "enter")
        assert task.blocked_on is not None
        prompt = await answered(scene, registry.get_prompt(task.blocked_on.prompt_id))
        assert prompt.answer == EDIT and prompt.verdict is Verdict.APPROVED
        assert json.loads(prompt.reason or "") == {"path": "/srv/a.txt", "text": "bye"}
        output = await asyncio.wait_for(run, 15)
    assert output["log"] == [["act", {"type": "edit", "args": {
        "action": "write_file", "args": {"path": "/srv/a.txt", "text": "bye"}}}]]


async def test_a_plain_question_with_an_edit_choice_and_an_action_opens_the_box_too(
        scene: Scene) -> None:
    """The edit box is not LangGraph's alone: any question whose action may be edited."""
    app = deck(scene)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        registry = scene.registry
        assert registry is not None
        task = registry.open_external("edit me", agent="other")
        prompt = registry.open_prompt(task.id, Question(text="Run it?", choices=[EDIT, "deny"],
                                                        action=WRITE))
        await until(lambda: task.id in app.view.index, what="the asking row")
        await move_to(app, pilot, task.id)
        await read_all(app, pilot)
        await pilot.press("a")  # the first choice is edit
        assert app.mode is Mode.EDIT
        await pilot.press("enter")  # unchanged: sent as it was
        done = await answered(scene, prompt)
        assert done.answer == EDIT and json.loads(done.reason or "") == WRITE.input


def test_the_edit_box_snapshot(snap_compare: Any, scene: Scene) -> None:
    """A LangGraph request highlighted (last row), read to its end with `e`, then `2`: the
    prompt bar's box is labelled "edit write_file input (JSON) ›" and holds
    {"path": "/srv/notes.txt", "text": "Release 1.4: faster sync"} with the cursor at its
    end; the footer offers only ⏎ send and esc cancel."""
    app = deck(scene)
    notes = Action(agent="langgraph", tool="write_file", session="notes-1",
                   input={"path": "/srv/notes.txt", "text": "Release 1.4: faster sync"})

    async def before(pilot: Pilot) -> None:
        await ready(app, pilot)
        assert scene.registry is not None
        task = scene.registry.open_external("release notes", agent="langgraph")
        scene.registry.open_prompt(task.id, Question(
            text="Write the release notes to /srv/notes.txt?", choices=["approve", EDIT, "deny"],
            action=notes))
        await until(lambda: task.id in app.view.index, what="the asking row")
        await pilot.press("G")
        await settle(app, pilot)
        await read_all(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)
