"""The dashboard app: the live deck and its keys (answers, aborts, the filter, folds).

A key's action asks `Modes` what to do, with the facts of the highlighted task, and
carries out the intents it returns: widgets draw and post messages, and only the app
changes the view or the widgets. What the deck shows, and how it follows the daemon,
is `tui.live.LiveDeck`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events, on
from textual.binding import Binding, BindingType
from textual.widget import Widget

from core.errors import AlreadyAnswered, TaskdeckError
from core.model import Action, Task, TaskStatus
from tui.help import Command, DeckCommands, HelpScreen
from tui.live import Connect, LiveDeck
from tui.messages import JumpToTask
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
    OpenRemember,
    Remember,
    Say,
    Send,
    ShowRemember,
)
from tui.view import answer_notice, is_asking
from tui.widgets.bars import ConfirmBar, FilterBar, InlineInput, PromptBar
from tui.widgets.task_tree import TaskTree
from tui.widgets.touch import TouchBar


class DeckApp(LiveDeck):
    """The taskdeck dashboard: the live deck, answered and steered by key."""

    COMMANDS = LiveDeck.COMMANDS | {DeckCommands}

    # Keys are bound with priority so each is acted on as it is read, in the order typed:
    # a key that opens a box (d, r, /) moves the focus before the keys after it are routed,
    # so a burst (a paste, tmux send-keys, a busy machine) lands in the box, in order.
    # Escape, q and ? are not: the boxes and the help screen handle them first.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "next_blocked", "next question", id="deck.next_blocked", priority=True),
        # The answer keys are spelled out in the prompt bar above the footer whenever
        # they apply, so the footer keeps its width (80 columns) for the other keys.
        Binding("a", "approve", "approve", show=False, id="deck.approve", priority=True),
        Binding("d", "deny", "deny", show=False, id="deck.deny", priority=True),
        Binding("r", "reply", "reply", show=False, id="deck.reply", priority=True),
        Binding("A", "remember('allow')", "approve and remember", show=False,
                id="deck.remember_allow", priority=True),
        Binding("D", "remember('deny')", "deny and remember", show=False,
                id="deck.remember_deny", priority=True),
        Binding("e", "expand", "expand question", show=False, id="deck.expand", priority=True),
        *(
            Binding(str(n), f"choose({n})", "choose", show=False, id=f"deck.choose_{n}",
                    priority=True)
            for n in range(1, 10)
        ),
        Binding("x", "abort", "abort", id="deck.abort", priority=True),
        Binding("X", "abort(True)", "abort one", show=False, id="deck.abort_only", priority=True),
        Binding("y", "confirm_yes", "yes, abort", id="deck.confirm_yes", priority=True),
        Binding("n", "confirm_no", "no", id="deck.confirm_no", priority=True),
        Binding("escape", "escape", "cancel", show=False, id="deck.escape"),
        Binding("slash", "filter", "filter", key_display="/", id="deck.filter", priority=True),
        Binding("f", "toggle_finished", "finished", id="deck.toggle_finished", priority=True),
        Binding("i", "toggle_side", "details", show=False, id="deck.toggle_side", priority=True),
        Binding("R", "rules", "rules", show=False, id="deck.rules", priority=True),
        Binding("question_mark", "help", "help", key_display="?", id="deck.help"),
        Binding("q", "quit", "quit", id="deck.quit"),
    ]

    def __init__(self, connect: Connect, **options: Any) -> None:
        super().__init__(connect, **options)
        self.modes = Modes()
        """Which box has the keys, and what each key does."""
        self._binding_key: object = None

    @property
    def mode(self) -> Mode:
        """The open mode."""
        return self.modes.mode

    # ------------------------------------------------------ following the cursor

    def _cursor_moved(self, task_id: int | None) -> None:
        self._carry_out(self.modes.highlighted(task_id))

    def _sync_to_cursor(self, task: Task | None) -> None:
        self._sync_prompt_bar(task)
        self._sync_bindings(task)

    def _sync_prompt_bar(self, task: Task | None) -> None:
        bar = self.query_one(PromptBar)
        if self.mode.is_answering:
            return  # the open box keeps its prompt until sent or cancelled
        path = self.view.path_of(task.id) if task is not None else []
        if task is not None and is_asking(task):
            bar.show_prompt(task, path, self._action_of(task))
        else:
            bar.show_context(task, path)
        bar.set_class(self.mode is Mode.CONFIRM, "-covered")

    def _sync_bindings(self, task: Task | None) -> None:
        # Only what `Modes.allows` reads: a change recomposes the footer, a layout pass of
        # the screen (it was redone on every move onto or off an asking row).
        key = (self.mode, task is not None, task is not None and task.status.is_ended)
        if key != self._binding_key:
            self._binding_key = key
            self.refresh_bindings()
        blocked = task.blocked_on if task is not None and is_asking(task) else None
        self.query_one(TouchBar).show_mode(self.mode, blocked.choices if blocked else ())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "finish_box":
            return isinstance(self.focused, InlineInput)
        return self.modes.allows(action, self._cursor_task(), covered=len(self.screen_stack) > 1)

    # ------------------------------------------------------------- keys

    def action_approve(self) -> None:
        self.action_choose(1)

    def action_choose(self, number: int) -> None:
        task = self._cursor_task()
        action = self._action_of(task) if task is not None else None
        self._carry_out(self.modes.choose(task, number, unread=self._unread(task), action=action))

    def action_expand(self) -> None:
        """Show more of a long question: the next lines, then back to the short view."""
        self._carry_out(self.modes.expand(self._cursor_task()))

    def action_deny(self) -> None:
        self._carry_out(self.modes.open_answer(self._cursor_task(), Mode.REASON))

    def action_reply(self) -> None:
        self._carry_out(self.modes.open_answer(self._cursor_task(), Mode.REPLY))

    def action_remember(self, effect: str) -> None:
        """`A` / `D`: approve or deny, and remember it as a rule (edited first)."""
        from core.policy.propose import propose

        task = self._cursor_task()
        action = self._action_of(task) if task is not None else None
        proposal = propose(action) if action is not None else ""
        self._carry_out(self.modes.open_remember(task, effect, action, proposal,
                                                 unread=self._unread(task)))

    def action_abort(self, only: bool = False) -> None:
        task = self._cursor_task()
        count = self.view.live_in_subtree(task.id, only=only) if task is not None else 0
        self._carry_out(self.modes.abort(task, count, only=only))

    def action_confirm_yes(self) -> None:
        self._carry_out(self.modes.confirm(True))

    def action_confirm_no(self) -> None:
        self._carry_out(self.modes.confirm(False))

    def action_filter(self) -> None:
        self._carry_out(self.modes.open_filter())

    def action_escape(self) -> None:
        self._carry_out(self.modes.escape(filtered=bool(self.view.filter_text)))

    @on(InlineInput.Changed, "#filter-input")
    def _on_filter_changed(self, event: InlineInput.Changed) -> None:
        event.stop()
        self._carry_out(self.modes.filter_typed(event.value))

    def action_next_blocked(self) -> None:
        target = self.view.next_asking(self.query_one(TaskTree).cursor_id)
        if target is None:
            waiting = self.view.counts[TaskStatus.BLOCKED] - len(self.view.mirror.prompts)
            also = f" ({waiting} wait on sub-tasks, which need no answer)" if waiting > 0 else ""
            self.notify(f"no task is asking a question{also}")
            return
        self._go_to(target)

    @on(JumpToTask)
    def _on_jump(self, event: JumpToTask) -> None:
        self.view.reveal([event.task_id])
        self._go_to(event.task_id)

    def action_toggle_finished(self) -> None:
        self.view.hide_finished = not self.view.hide_finished
        self.view.rebuild()
        self.query_one(TaskTree).rows_changed()
        state = "hidden" if self.view.hide_finished else "shown"
        self.notify(f"finished work {state} (f toggles)")
        self._draw_tree_title()

    def action_toggle_side(self) -> None:
        """Show or hide the detail and inbox panes (hidden by default below 100 columns)."""
        self.screen.toggle_class("-side")
        self.call_after_refresh(self._draw_header)

    def action_toggle_fold(self) -> None:
        """The tree's enter (and double click): fold or unfold the highlighted task."""
        task_id = self.query_one(TaskTree).cursor_id
        if task_id is None:
            return
        if task_id in self.view.collapsed:
            self.action_unfold()
        else:
            self.action_fold()

    def action_fold(self) -> None:
        """The tree's left / h: fold the highlighted task, or on a leaf go to its parent."""
        tree = self.query_one(TaskTree)
        task_id = tree.cursor_id
        if task_id is None:
            return
        row = self.view.index.get(task_id)
        if row is not None and not self.view.rows[row].has_children:
            parent = self.view.mirror.tasks[task_id].parent_id
            if parent is not None and parent in self.view.index:
                tree.move_to(parent)  # like a file tree: left on a leaf goes to its parent
            return
        self.view.fold(task_id)
        tree.rows_changed()

    def action_unfold(self) -> None:
        """The tree's right / l: show a folded task's sub-tasks again."""
        tree = self.query_one(TaskTree)
        task_id = tree.cursor_id
        if task_id is None or task_id not in self.view.collapsed:
            return
        self.view.unfold(task_id)
        tree.rows_changed()

    def action_help_quit(self) -> None:
        """Ctrl+C: say in plain words how to quit (Textual's own notice was markup)."""
        self.notify("press q (or ctrl+q) to quit the dashboard", title="ctrl+c does not quit")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_rules(self) -> None:
        """`R`: the approval rules, to read, filter by agent and delete."""
        from tui.rules import RulesScreen

        if not isinstance(self.screen, RulesScreen):
            self.push_screen(RulesScreen())

    def palette_commands(self) -> list[Command]:
        """The dashboard's actions offered in the command palette."""
        return [
            ("Abort task…", "abort the highlighted task and its sub-tasks (asks to confirm)",
             self.action_abort),
            ("Abort only this task…", "abort the highlighted task, not its sub-tasks",
             lambda: self.action_abort(True)),
            ("Toggle finished", "hide or show finished work", self.action_toggle_finished),
            ("Jump to next question", "move to the next task asking a question",
             self.action_next_blocked),
            ("Filter…", "filter rows by text", self.action_filter),
            ("Approval rules", "list, filter and delete approval rules", self.action_rules),
            ("Help", "list every key", self.action_help),
        ]

    # ------------------------------------------------------ keys for a box

    async def on_event(self, event: events.Event) -> None:
        """Keys for an open box are typed into it here, as they are read (see `_type`)."""
        if (
            isinstance(event, events.Key)
            and not event.is_forwarded
            and isinstance(self.focused, InlineInput)
            and len(self.screen_stack) == 1
            and await self._type(self.focused, event)
        ):
            return
        await super().on_event(event)

    async def _type(self, box: InlineInput, event: events.Key) -> bool:
        """Act on a key for the open box at once, in the order the keys were read.

        Handed to the box, a key waits in the box's own queue while the app reads the
        next one: Enter was acted on after the keys typed behind it, which joined the
        reply being sent, and keys typed right after the box closed were lost.

        Returns:
            False for a key the box does not take (e.g. tab): it goes its usual way.
        """
        if self.mode is Mode.REMEMBER and event.key in ("tab", "ctrl+e"):
            self._carry_out(self.modes.cycle_scope() if event.key == "tab"
                            else self.modes.cycle_expiry())
        elif event.key in ("enter", "escape"):
            self._finish(box, sent=event.key == "enter")
        elif event.is_printable and event.character is not None:
            selection = box.selection
            if selection.is_empty:
                box.insert_text_at_cursor(event.character)
            else:
                box.replace(event.character, *selection)
        else:
            active = self.screen.active_bindings.get(event.key)
            if active is None or active.node is not box:
                return False
            await self.run_action(active.binding.action, box)
        return True

    def _finish(self, box: InlineInput, *, sent: bool) -> None:
        """Enter (send) or Esc (cancel) in an open box."""
        if box.id == "prompt-input":
            self._carry_out(self.modes.submit_answer(box.value) if sent
                            else self.modes.cancel_answer())
        else:
            self._carry_out(self.modes.submit_filter(box.value) if sent
                            else self.modes.cancel_filter())

    def action_finish_box(self, sent: bool) -> None:
        """The send and cancel buttons of a touch screen: Enter and Esc in the open box."""
        if isinstance(self.focused, InlineInput):
            self._finish(self.focused, sent=sent)

    def _focus_now(self, widget: Widget) -> None:
        """Focus at once, not after a refresh: keys typed next go where this one sent them.

        (`Widget.focus()` lands later: after `b r` it took the focus back from the box
        `r` had just opened.)
        """
        self.screen.set_focus(widget)

    # ------------------------------------------------- carrying out intents

    def _carry_out(self, intents: Intents) -> None:
        """Do what a key decided, in order: the one place a key changes the screen."""
        for intent in intents:
            match intent:
                case Say(text, severity):
                    self.notify(text, severity=severity)
                case Send(task_id, prompt_id, text, reason):
                    self.run_worker(self._answer(task_id, prompt_id, text, reason),
                                    group="answer", exit_on_error=False)
                case OpenAnswer(task_id, label, text):
                    self._open_answer(task_id, label, text)
                case CloseAnswer():
                    self._close_answer()
                case Expand():
                    self.query_one(PromptBar).expand()
                case AskAbort(task_id, count, only):
                    self._ask_abort(task_id, count, only)
                case CloseConfirm():
                    self.query_one(ConfirmBar).display = False
                    self._cursor_changed(refetch=False)
                case Abort(task_id, only):
                    self.run_worker(self._abort(task_id, only), group="abort",
                                    exit_on_error=False)
                case OpenFilter():
                    self._open_filter()
                case ApplyFilter(text):
                    self._apply_filter(text)
                case LeaveFilter(keep):
                    self._leave_filter(keep=keep)
                case OpenRemember(task_id, label, pattern, options):
                    self._open_answer(task_id, label, pattern)
                    self.query_one(PromptBar).show_remember(options)
                case ShowRemember(options):
                    self.query_one(PromptBar).show_remember(options)
                case Remember():
                    self.run_worker(self._remember(intent), group="answer", exit_on_error=False)

    def _unread(self, task: Task | None) -> int:
        """Lines of the task's question never on screen (0 when it asks none)."""
        if task is None or not is_asking(task):
            return 0
        return self.query_one(PromptBar).unread_lines(
            task, self.view.path_of(task.id), self._action_of(task))

    def _action_of(self, task: Task) -> Action | None:
        """The action the question the task waits on asks leave for, if any."""
        if task.blocked_on is None:
            return None
        prompt = self.view.mirror.prompts.get(task.blocked_on.prompt_id)
        return prompt.action if prompt is not None else None

    def _open_answer(self, task_id: int, label: str, text: str = "") -> None:
        task = self.view.mirror.tasks[task_id]
        bar = self.query_one(PromptBar)
        bar.show_prompt(task, self.view.path_of(task.id), self._action_of(task))
        bar.remove_class("-covered")
        self._focus_now(bar.open_input(label, text))
        self._sync_bindings(task)

    def _close_answer(self) -> None:
        self.query_one(PromptBar).close_input()
        self._focus_now(self.query_one(TaskTree))
        self._cursor_changed(refetch=False)

    async def _answer(self, task_id: int, prompt_id: int, text: str, reason: str | None) -> None:
        if self.client is None:
            return
        try:
            prompt = await self.client.answer(prompt_id, text, reason=reason)
        except TaskdeckError as exc:
            self.notify(f"#{task_id} not answered: {exc}", severity="error")
            return
        self.notify(answer_notice(prompt, text))

    async def _remember(self, remember: Remember) -> None:
        """Save the rule, then answer its question (the rule may have answered it already:
        a new rule decides the questions waiting that it covers)."""
        if self.client is None:
            return
        task_id = remember.task_id
        try:
            rule = await self.client.add_rule(remember.effect, remember.pattern,
                                              expires=remember.expires, **remember.scope)
        except TaskdeckError as exc:
            self.notify(f"rule not saved, #{task_id} not answered: {exc}", severity="error")
            return
        saved = f"saved rule {rule.id}: {rule.effect.value} {rule.pattern} ({rule.scope})"
        try:
            prompt = await self.client.answer(remember.prompt_id, remember.answer)
        except AlreadyAnswered as exc:
            self.notify(f"{saved}; {exc}")
        except TaskdeckError as exc:
            self.notify(f"{saved}; #{task_id} not answered: {exc}", severity="error")
        else:
            self.notify(f"{saved}; {answer_notice(prompt, remember.answer)}")

    def _ask_abort(self, task_id: int, count: int, only: bool) -> None:
        task = self.view.mirror.tasks[task_id]
        confirm = self.query_one(ConfirmBar)
        confirm.ask(task, count, only=only)
        confirm.display = True
        self.query_one(PromptBar).add_class("-covered")
        self._sync_bindings(task)

    async def _abort(self, task_id: int, only: bool) -> None:
        if self.client is None:
            return
        try:
            stopped = await self.client.abort(task_id, only=only)
        except TaskdeckError as exc:
            self.notify(f"#{task_id} not aborted: {exc}", severity="error")
            return
        noun = "task" if len(stopped) == 1 else "tasks"
        self.notify(f"aborted #{task_id}: {len(stopped)} {noun} stopped")

    def _go_to(self, task_id: int) -> None:
        """Move the cursor to a task the view has just revealed, and focus the tree."""
        if not self.view.filter_text:
            self._set_filter_box("")  # revealing it may have cleared the filter
        tree = self.query_one(TaskTree)
        tree.rows_changed()
        tree.move_to(task_id)
        self._focus_now(tree)
        self._draw_tree_title()

    def _open_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.display = True
        box = bar.query_one(InlineInput)
        box.value = self.view.filter_text
        self._focus_now(box)
        self._sync_bindings(self.query_one(TaskTree).cursor_task)

    def _apply_filter(self, typed: str) -> None:
        if self.view.filter_text == typed.strip():
            return
        self.view.filter_text = typed.strip()
        self.view.rebuild()
        self.query_one(TaskTree).rows_changed()
        self._draw_tree_title()

    def _leave_filter(self, *, keep: bool) -> None:
        if not keep or not self.view.filter_text:
            self._set_filter_box("")
            self.query_one(FilterBar).display = False
            self.view.filter_text = ""
            self.view.rebuild()
            self.query_one(TaskTree).rows_changed()
        self._focus_now(self.query_one(TaskTree))
        self._draw_tree_title()
        self._sync_bindings(self.query_one(TaskTree).cursor_task)

    def _set_filter_box(self, value: str) -> None:
        box = self.query_one("#filter-input", InlineInput)
        with box.prevent(InlineInput.Changed):
            box.value = value
        if not value:
            self.query_one(FilterBar).display = False
