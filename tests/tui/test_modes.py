"""The dashboard's mode machine without a screen: each rule a key obeys, one case each."""

from __future__ import annotations

import pytest

from core.model import Action, BlockedOn, BlockedReason, EndReason, Task, TaskStatus
from tui.modes import (
    Abort,
    ApplyFilter,
    AskAbort,
    CloseAnswer,
    CloseConfirm,
    Expand,
    Intents,
    LeaveFilter,
    Mode,
    Modes,
    OpenAnswer,
    OpenFilter,
    Remember,
    Say,
    Send,
)


def asking(task_id: int = 3, *choices: str, prompt_id: int = 7) -> Task:
    """A task waiting on a person's answer to prompt `prompt_id`."""
    return Task(id=task_id, agent="demo", description="asks", status=TaskStatus.BLOCKED,
                blocked_reason=BlockedReason.PROMPT,
                blocked_on=BlockedOn(prompt_id, "Deploy?", list(choices or ("approve", "deny"))))


def running(task_id: int = 12) -> Task:
    return Task(id=task_id, agent="demo", description="works", status=TaskStatus.IN_PROGRESS)


def waiting(task_id: int = 1) -> Task:
    """Blocked on its sub-tasks: nobody can answer it."""
    return Task(id=task_id, agent="demo", description="waits", status=TaskStatus.BLOCKED,
                blocked_reason=BlockedReason.SUBTASKS)


def ended(task_id: int = 4) -> Task:
    return Task(id=task_id, agent="demo", description="done", status=TaskStatus.FAILED,
                end_reason=EndReason.ABORTED)


NOT_ASKING = "#12 is not asking; b jumps to the next question"


# ------------------------------------------------------------------ which keys apply


def test_in_normal_mode_every_key_applies_and_abort_only_on_a_live_task() -> None:
    modes = Modes()
    for action in ("approve", "deny", "reply", "choose", "expand", "filter", "next_blocked"):
        assert modes.allows(action, running())
    assert modes.allows("approve", None)  # says "no task highlighted" rather than nothing
    assert modes.allows("abort", running())
    assert not modes.allows("abort", ended())
    assert not modes.allows("abort", None)
    assert not modes.allows("confirm_yes", running())


def test_an_open_confirmation_takes_only_y_n_esc_and_the_tree_keys() -> None:
    modes = Modes()
    modes.abort(running(), 1)
    assert modes.allows("confirm_yes", running()) and modes.allows("confirm_no", running())
    for action in ("approve", "choose", "reply", "filter", "abort", "toggle_finished"):
        assert not modes.allows(action, running()), action
    for action in ("escape", "quit", "help", "toggle_fold", "fold", "unfold"):
        assert modes.allows(action, running()), action


def test_over_help_or_the_palette_only_the_keys_of_every_screen_apply() -> None:
    modes = Modes()
    assert not modes.allows("approve", asking(), covered=True)
    assert not modes.allows("toggle_fold", asking(), covered=True)
    for action in ("quit", "help", "command_palette", "escape"):
        assert modes.allows(action, asking(), covered=True)


@pytest.mark.parametrize("mode", [Mode.REPLY, Mode.REASON, Mode.FILTER])
def test_an_open_box_leaves_the_app_keys_off(mode: Mode) -> None:
    modes = Modes(mode=mode)
    for action in ("approve", "deny", "abort", "confirm_yes", "filter", "next_blocked"):
        assert not modes.allows(action, asking()), action


# ------------------------------------------------------------------ answer keys


def test_a_approves_with_the_first_choice() -> None:
    assert Modes().choose(asking(), 1) == (Send(3, 7, "approve"),)


def test_a_number_sends_that_choice() -> None:
    task = asking(9, "main", "release/2.4", "cancel")
    assert Modes().choose(task, 2) == (Send(9, 7, "release/2.4"),)


def test_a_number_past_the_choices_sends_nothing_and_names_the_keys() -> None:
    task = asking(9, "main", "release/2.4", "cancel")
    assert Modes().choose(task, 4) == (Say("#9 offers 3 choices: keys 1-3", "warning"),)


def test_an_answer_key_on_a_row_not_asking_says_so() -> None:
    modes = Modes()
    for intents in (modes.choose(running(), 1), modes.expand(running()),
                    modes.open_answer(running(), Mode.REPLY),
                    modes.open_answer(running(), Mode.REASON)):
        assert intents == (Say(NOT_ASKING, "warning"),)
    assert modes.mode is Mode.NORMAL


def test_a_task_waiting_on_sub_tasks_is_not_asking() -> None:
    assert Modes().choose(waiting(), 1) == (Say("#1 is not asking; b jumps to the next question",
                                                "warning"),)


def test_an_answer_key_with_no_task_highlighted_says_so() -> None:
    assert Modes().choose(None, 1) == (Say("no task highlighted"),)


def test_an_approval_waits_until_a_long_question_was_read() -> None:
    said = Modes().choose(asking(), 1, unread=4)
    assert said == (Say("#3's question has 4 more lines you have not seen: e shows them; "
                        "approve once you have read them", "warning"),)


def test_a_denial_by_number_needs_no_reading() -> None:
    assert Modes().choose(asking(), 2, unread=4) == (Send(3, 7, "deny"),)


BASH = Action(agent="claude", tool="Bash", input={"command": "npm test"}, session="s1")


def rule_sent(effect: str, *choices: str) -> Intents:
    """`A` or `D` on a task asking `choices`, then Enter on the proposed rule."""
    modes = Modes()
    modes.open_remember(asking(3, *choices), effect, BASH, "Bash(npm test)")
    return modes.submit_answer("Bash(npm test)")


@pytest.mark.parametrize(("choices", "answer"), [
    (("approve", "deny"), "approve"),
    (("no", "yes"), "yes"),                    # the first choice refuses: never it
    (("cancel", "edit", "run it"), "run it"),  # nor the edit, which asks for new input
])
def test_an_allow_rule_answers_with_the_first_choice_that_approves(
        choices: tuple[str, ...], answer: str) -> None:
    sent = rule_sent("allow", *choices)
    assert isinstance(sent[0], Remember) and sent[0].effect == "allow"
    assert sent[0].answer == answer


def test_an_allow_rule_on_a_question_with_no_approving_choice_answers_nothing() -> None:
    assert rule_sent("allow", "no", "cancel") == (Say(
        "this question offers no choice that approves for a rule to give: Esc, then d or "
        "1-9 answers it", "warning"),)


def test_a_deny_rule_answers_with_the_refusal_wherever_it_is_listed() -> None:
    sent = rule_sent("deny", "ship it", "no")
    assert isinstance(sent[0], Remember) and sent[0].answer == "no"


def test_an_allow_rule_waits_until_a_long_question_was_read() -> None:
    said = Modes().open_remember(asking(3, "no", "yes"), "allow", BASH, "Bash(npm test)",
                                 unread=4)
    assert said == (Say("#3's question has 4 more lines you have not seen: e shows them; "
                        "approve once you have read them", "warning"),)


def test_e_expands_an_asking_row() -> None:
    assert Modes().expand(asking()) == (Expand(),)


# ------------------------------------------------------------------ the answer box


def test_r_opens_the_reply_box_and_enter_sends_the_text() -> None:
    modes = Modes()
    assert modes.open_answer(asking(), Mode.REPLY) == (OpenAnswer(3, "reply"),)
    assert modes.mode is Mode.REPLY
    assert modes.submit_answer("  only the http tests ") == (
        Send(3, 7, "only the http tests"), CloseAnswer())
    assert modes.mode is Mode.NORMAL and modes.answering is None


def test_an_empty_reply_is_not_sent_and_the_box_stays_open() -> None:
    modes = Modes()
    modes.open_answer(asking(), Mode.REPLY)
    assert modes.submit_answer("   ") == (Say("type a reply first (Esc cancels)", "warning"),)
    assert modes.mode is Mode.REPLY


def test_a_reply_that_reads_yes_is_sent_as_text() -> None:
    modes = Modes()
    modes.open_answer(asking(), Mode.REPLY)
    assert modes.submit_answer("yes")[0] == Send(3, 7, "yes")  # the daemon's verdict: REPLIED


def test_d_sends_the_choice_that_refuses_with_the_reason_typed() -> None:
    modes = Modes()
    task = asking(9, "main", "release/2.4", "cancel")
    assert modes.open_answer(task, Mode.REASON) == (OpenAnswer(9, "deny reason"),)
    assert modes.submit_answer("too risky") == (
        Send(9, 7, "cancel", reason="too risky"), CloseAnswer())


def test_d_sends_the_refusal_wherever_it_is_listed_and_never_an_approval() -> None:
    """`d` on cancel / proceed sends "cancel" (the last choice, "proceed", approves there);
    on us / eu / asia nothing refuses, so `d` says so and sends nothing."""
    modes = Modes()
    modes.open_answer(asking(9, "cancel", "proceed"), Mode.REASON)
    assert modes.submit_answer("") == (Send(9, 7, "cancel", reason=None), CloseAnswer())
    [said] = modes.open_answer(asking(9, "us", "eu", "asia"), Mode.REASON)
    assert isinstance(said, Say) and "offers no denial" in said.text
    assert modes.mode is Mode.NORMAL


def test_a_reply_that_is_one_of_the_choices_is_not_sent() -> None:
    """`r` promises "not an approval": typed "approve" would be one."""
    modes = Modes()
    modes.open_answer(asking(), Mode.REPLY)
    [said] = modes.submit_answer("approve")
    assert isinstance(said, Say) and "one of the choices" in said.text
    assert modes.mode is Mode.REPLY


def test_d_then_enter_denies_with_no_reason() -> None:
    modes = Modes()
    modes.open_answer(asking(), Mode.REASON)
    assert modes.submit_answer("") == (Send(3, 7, "deny", reason=None), CloseAnswer())


def test_esc_in_the_answer_box_sends_nothing() -> None:
    modes = Modes()
    modes.open_answer(asking(), Mode.REPLY)
    assert modes.cancel_answer() == (CloseAnswer(),)
    assert modes.mode is Mode.NORMAL
    assert modes.submit_answer("late") == ()  # Enter after Esc: no box, nothing sent


def test_esc_outside_the_open_answer_box_still_closes_it() -> None:
    modes = Modes()
    modes.open_answer(asking(), Mode.REPLY)
    assert modes.escape(filtered=True) == (CloseAnswer(),)
    assert modes.mode is Mode.NORMAL


# ------------------------------------------------------------------ aborts


def test_x_asks_first_and_y_aborts_what_it_named() -> None:
    modes = Modes()
    assert modes.abort(running(), 3) == (AskAbort(12, 3, False),)
    assert modes.mode is Mode.CONFIRM
    assert modes.confirm(True) == (CloseConfirm(), Abort(12, False))
    assert modes.mode is Mode.NORMAL


def test_shift_x_then_n_keeps_the_task() -> None:
    modes = Modes()
    assert modes.abort(running(), 1, only=True) == (AskAbort(12, 1, True),)
    assert modes.confirm(False) == (CloseConfirm(),)
    assert modes.confirm(True) == ()  # nothing waits for y any more


def test_an_abort_with_nothing_live_left_says_so() -> None:
    modes = Modes()
    assert modes.abort(ended(), 0) == (Say("#4 and its sub-tasks have all ended: nothing to "
                                           "abort"),)
    assert modes.mode is Mode.NORMAL


def test_moving_to_another_task_drops_the_confirmation() -> None:
    modes = Modes()
    modes.abort(running(), 1)
    assert modes.highlighted(12) == ()
    assert modes.highlighted(13) == (CloseConfirm(),)
    assert modes.mode is Mode.NORMAL and modes.confirming is None


def test_esc_drops_the_confirmation_before_the_filter() -> None:
    modes = Modes()
    modes.abort(running(), 1)
    assert modes.escape(filtered=True) == (CloseConfirm(),)
    assert modes.escape(filtered=True) == (LeaveFilter(keep=False),)
    assert modes.escape(filtered=False) == ()


def test_no_abort_while_a_box_is_open() -> None:
    modes = Modes()
    modes.open_filter()
    assert modes.abort(running(), 1) == ()
    assert modes.mode is Mode.FILTER


# ------------------------------------------------------------------ the filter


def test_slash_opens_the_filter_and_typing_filters() -> None:
    modes = Modes()
    assert modes.open_filter() == (OpenFilter(),)
    assert modes.filter_typed("qdr") == (ApplyFilter("qdr"),)
    assert modes.submit_filter("qdrant") == (ApplyFilter("qdrant"), LeaveFilter(keep=True))
    assert modes.filter_typed("qdrant!") == ()  # a change that lands after Enter


def test_esc_in_the_filter_box_clears_it() -> None:
    modes = Modes()
    modes.open_filter()
    assert modes.cancel_filter() == (LeaveFilter(keep=False),)
    assert modes.mode is Mode.NORMAL


def test_slash_does_nothing_over_another_mode() -> None:
    modes = Modes()
    modes.abort(running(), 1)
    assert modes.open_filter() == ()
    assert modes.mode is Mode.CONFIRM
