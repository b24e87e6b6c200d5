"""The dashboard app: live task tree, inline answers and aborts, over `core.client.Client`."""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker

from core.errors import BadRequest, InvalidState, TaskdeckError
from core.mirror import Mirror
from core.model import Prompt, Task, TaskStatus, Verdict
from tui.help import DeckCommands, HelpScreen
from tui.messages import JumpToTask
from tui.view import TreeView, answer_notice, clip, is_asking, verdict_of
from tui.widgets.bars import (
    ConfirmBar,
    FilterBar,
    InlineInput,
    NoticeBar,
    PromptBar,
    StatusBar,
)
from tui.widgets.panes import DetailPane, Inbox
from tui.widgets.task_tree import TaskTree, header_text

if TYPE_CHECKING:
    from core.client import Changes, Client
    from core.protocol import Decision

Connect = Callable[[], AbstractAsyncContextManager["Client"]]
"""Makes the client the app talks through; entered when the app starts, exited when it stops."""

Mode = Literal["normal", "reply", "reason", "confirm", "filter"]

FRAME = 1 / 30
"""Least seconds between two applications of changes to the screen (changes in between coalesce)."""

RATE_BUCKETS = 30
"""Seconds of event-rate history in the sparkline."""

ANSWER_ACTIONS = frozenset({"approve", "deny", "choose", "reply"})
"""Actions that apply only while the highlighted task waits on a person's answer."""

DETAIL_DELAY = 0.1
"""Seconds the cursor rests on a task before its prompts and decisions are fetched, so
holding j/k sends one request for where it stops, not one per row passed."""

DECISIONS_SHOWN = 50
"""Latest decisions (answers, aborts) fetched for the detail pane."""


class DeckApp(App[int]):
    """The taskdeck dashboard.

    The client's mirror is the state; widgets draw from it through a `TreeView`.
    The client calls `_on_change` for each batch of events; ids are collected and
    applied at most once per frame inside `batch_update`, touching only rows that
    changed.
    """

    CSS_PATH = "deck.tcss"
    TITLE = "taskdeck"
    COMMANDS = App.COMMANDS | {DeckCommands}
    NOTIFICATION_TIMEOUT = 4
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"), (100, "-medium"), (110, "-wide"),
    ]
    """Below 100 columns the tree takes the whole width; `i` brings the side panes back."""

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
        Binding("question_mark", "help", "help", key_display="?", id="deck.help"),
        Binding("q", "quit", "quit", id="deck.quit"),
    ]

    def __init__(
        self,
        connect: Connect,
        *,
        clock: Callable[[], float] = time.time,
        theme: str | None = None,
        blink: bool = True,
        sync_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self._connect = connect
        self.clock = clock
        """Every elapsed time and the event rate are measured with this."""
        self._blink = blink
        self._sync_timeout = sync_timeout
        self._wanted_theme = theme
        self._stack = contextlib.AsyncExitStack()
        self.client: Client | None = None
        self.view = TreeView(Mirror())
        self.mode: Mode = "normal"
        self.ready = False
        """True once the first snapshot is on screen."""
        self.failure: str | None = None
        """Why the app could not start, for `run_dashboard` to print."""
        self.connection = "connecting"
        """The client's connection state by name (live / stale / disconnected / connecting)."""
        self.notices: list[tuple[str, str]] = []
        """Every notification shown (severity, text), oldest first."""
        self.bells = 0
        self._dirty: set[int] = set()
        self._opened: list[Prompt] = []
        self._resync = False
        self._flush_pending = False
        self._flushed_at = 0.0
        """`time.monotonic()` of the last application of changes."""
        self._last_seq: int | None = None
        self._rate: deque[tuple[int, int]] = deque(maxlen=RATE_BUCKETS + 2)
        self._answering: tuple[int, int] | None = None
        """(task id, prompt id) the open answer box sends to."""
        self._confirming: tuple[int, bool] | None = None
        """(task id, only) of the abort waiting for y / n."""
        self._binding_key: object = None
        self._detail_sig: object = None
        self._detail_timer: Timer | None = None
        self._header_width: int | None = None
        self._journal_kept = True
        """False once the daemon said it keeps no journal: stop asking for decisions."""

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="tree-box"):
                yield Static(id="tree-header")
                yield TaskTree(self.view, self.clock, id="tree")
            with Vertical(id="side"):
                with VerticalScroll(id="detail-box"):
                    yield DetailPane(self.view, self.clock, id="detail")
                yield Inbox(self.view, id="inbox")
        yield NoticeBar(id="notice-bar")
        yield PromptBar(id="prompt-bar")
        yield ConfirmBar(id="confirm-bar")
        yield FilterBar(id="filter-bar")
        yield StatusBar(id="status-bar")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self._wanted_theme:
            if self._wanted_theme in self.available_themes:
                self.theme = self._wanted_theme
            else:
                names = ", ".join(sorted(self.available_themes))
                self.notify(f"unknown theme {self._wanted_theme!r} (one of {names})",
                            severity="warning")
        for box in self.query(InlineInput):
            box.cursor_blink = self._blink
        self.query_one("#tree-box").border_title = "Tasks"
        self.query_one("#detail-box").border_title = "Detail"
        self.query_one(StatusBar).set_connection(self.connection)
        self.query_one(Inbox).redraw()
        self._draw_status()
        self.query_one(TaskTree).focus()
        self.set_interval(1.0, self._tick)
        self.run_worker(self._start(), name="connect", exit_on_error=False)

    async def _start(self) -> None:
        try:
            self.client = await self._stack.enter_async_context(self._connect())
            self.view.mirror = self.client.mirror
            await self.client.start_mirror(self._on_change)
            await self.client.wait_synced(timeout=self._sync_timeout)
        except (TaskdeckError, TimeoutError) as exc:
            self.failure = str(exc) or "the daemon did not answer"
            self.exit(return_code=2)
            return
        self._resync = True
        self._flush()
        self.ready = True

    async def on_unmount(self) -> None:
        await self._stack.aclose()

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_header)  # once the tree has its new width

    def _draw_header(self) -> None:
        """The column header, redrawn (with a layout pass) only when the tree's width changed."""
        width = self.query_one(TaskTree).scrollable_content_region.width
        if width != self._header_width:
            self._header_width = width
            self.query_one("#tree-header", Static).update(header_text(width))

    # ------------------------------------------------------- live changes

    def _on_change(self, changes: Changes) -> None:
        """Collect a batch from the client; it is drawn on the next frame."""
        self._dirty |= changes.task_ids
        self._opened.extend(changes.opened)
        self._resync = self._resync or changes.resynced
        self.connection = changes.state.value
        mirror = self.client.mirror if self.client is not None else None
        if mirror is not None:
            if self._last_seq is not None and not changes.resynced:
                self._count_events(max(0, mirror.seq - self._last_seq))
            self._last_seq = mirror.seq
        if not self._flush_pending:
            self._flush_pending = True
            # The first change after a quiet frame is drawn at once; changes that
            # follow it within a frame wait for the rest of that frame, together.
            # (Until the first snapshot is drawn, `_start` draws it: no flush of its own.)
            wait = self._flushed_at + FRAME - time.monotonic() if self.ready else FRAME
            if wait > 0:
                self.set_timer(wait, self._flush)
            else:
                self.call_later(self._flush)

    @property
    def seen_seq(self) -> int | None:
        """The registry seq the app has been told about (for scripts that drive the scene)."""
        return self._last_seq

    def _count_events(self, count: int) -> None:
        second = int(self.clock())
        if self._rate and self._rate[-1][0] == second:
            self._rate[-1] = (second, self._rate[-1][1] + count)
        else:
            self._rate.append((second, count))

    def _flush(self) -> None:
        """Apply every change collected since the last frame, touching only what changed."""
        self._flush_pending = False
        self._flushed_at = time.monotonic()
        if self.client is None:
            return
        dirty, self._dirty = self._dirty, set()
        opened, self._opened = self._opened, []
        resync, self._resync = self._resync, False
        try:
            tree = self.query_one(TaskTree)
        except NoMatches:
            return  # shutting down: the screen is gone
        with self.batch_update():
            if resync:
                self._journal_kept = True  # maybe a restarted daemon, now with a journal
                self.view.mirror = self.client.mirror
                self.view.reset()
                tree.rows_changed()
                self._settle_heap()
            elif dirty:
                if self.view.apply(dirty):
                    tree.rows_changed()
                else:
                    tree.tasks_changed(dirty)
            self.query_one(Inbox).redraw()
            self._draw_status()
            if resync or tree.cursor_id in dirty:
                self._cursor_changed(refetch=False)
            self._draw_header()
        if opened and not resync:
            self._announce(opened)

    @staticmethod
    def _settle_heap() -> None:
        """Collect once, then leave what a snapshot built out of later collections.

        A snapshot of 10,000 tasks leaves a large heap of long-lived objects (rows,
        indexes, widgets); every full collection walked all of it, a pause of ~25 ms
        that landed in front of whatever key was pressed. Frozen objects are still
        freed by reference counting when dropped. Done before the snapshot's first
        frame (~20 ms of it with 10,000 tasks) rather than racing it.
        """
        gc.collect()
        gc.freeze()

    def _announce(self, opened: list[Prompt]) -> None:
        self.bells += 1
        self.bell()
        for prompt in opened[:3]:
            path = " › ".join(t.agent for t in self.view.path_of(prompt.task_id))
            first, *more = prompt.question.splitlines() or [""]
            lines = f" (+{len(more)} lines)" if more else ""
            self.notify(f"{path}: {clip(first, 90)}{lines}",
                        title=f"#{prompt.task_id} asks (b jumps)", severity="warning")
        if len(opened) > 3:
            self.notify(f"and {len(opened) - 3} more questions", severity="warning")

    def _tick(self) -> None:
        """Once a second: connection state, event rate, elapsed times."""
        if self.client is not None:
            self.connection = self.client.state.value
        try:
            tree = self.query_one(TaskTree)
        except NoMatches:
            return
        with self.batch_update():
            self._draw_status()
            tree.refresh_visible()
            self.query_one(DetailPane).redraw()

    def _draw_status(self) -> None:
        self._draw_tree_title()
        bar = self.query_one(StatusBar)
        bar.set_connection(self.connection)
        asking = len(self.view.mirror.prompts)
        bar.set_counts(self.view.counts, asking, self.view.total_tokens)
        now = int(self.clock())
        counts = dict(self._rate)
        # Complete seconds only: the second in progress would change the sparkline on
        # every frame (a repaint and a frame of its own), and always look like a dip.
        bar.set_rate([float(counts.get(s, 0)) for s in range(now - RATE_BUCKETS, now)])

    # ------------------------------------------------------ cursor, detail

    @on(TaskTree.Highlighted)
    def _on_highlighted(self, event: TaskTree.Highlighted) -> None:
        if self._confirming is not None and event.task_id != self._confirming[0]:
            self._close_confirm()  # the confirmation named another task
        self._cursor_changed(refetch=True)

    def _cursor_changed(self, *, refetch: bool) -> None:
        """Sync the detail pane, prompt bar and footer keys with the highlighted task."""
        task = self.query_one(TaskTree).cursor_task
        detail = self.query_one(DetailPane)
        task_id = task.id if task is not None else None
        detail.show(task_id)
        sig = (task_id, task.status, task.blocked_on) if task is not None else None
        if task is not None and (refetch or sig != self._detail_sig):
            self._detail_sig = sig
            if self._detail_timer is not None:
                self._detail_timer.stop()
            self._detail_timer = self.set_timer(DETAIL_DELAY, lambda: self._fetch_detail(task.id))
        self._sync_prompt_bar(task)
        self._sync_bindings(task)

    def _fetch_detail(self, task_id: int) -> None:
        if not self.is_running:
            return
        self.run_worker(self._get_history(task_id), group="detail", exclusive=True,
                        exit_on_error=False)

    async def _get_history(self, task_id: int) -> None:
        if self.client is None:
            return
        try:
            _, prompts = await self.client.get(task_id)
        except TaskdeckError:
            return  # evicted meanwhile, or the daemon is away: the mirror's view stands
        decisions = await self._get_decisions(task_id)
        detail = self.query_one(DetailPane)
        if detail.task_id == task_id:
            detail.show(task_id, prompts, decisions)

    async def _get_decisions(self, task_id: int) -> list[Decision] | None:
        """The task's answers and aborts from the daemon's journal; None keeps what is shown."""
        if self.client is None or not self._journal_kept:
            return None
        try:
            return await self.client.history(task_id=task_id, limit=DECISIONS_SHOWN)
        except (InvalidState, BadRequest):
            # No journal (--no-journal), or a daemon from before `history`: quietly
            # stop asking; the pane shows the prompts' own answers.
            self._journal_kept = False
            return None
        except TaskdeckError:
            return None

    def _sync_prompt_bar(self, task: Task | None) -> None:
        bar = self.query_one(PromptBar)
        if self.mode in ("reply", "reason"):
            return  # the open box keeps its prompt until sent or cancelled
        if task is not None and is_asking(task) and self.mode != "confirm":
            bar.show_prompt(task, self.view.path_of(task.id))
            bar.display = True
        else:
            bar.display = False

    def _sync_bindings(self, task: Task | None) -> None:
        key = (
            self.mode,
            task is not None,
            task is not None and task.status.is_ended,
            len(task.blocked_on.choices) if task is not None and is_asking(task)
            and task.blocked_on is not None else 0,
        )
        if key != self._binding_key:
            self._binding_key = key
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "help", "command_palette", "escape"):
            return True
        if len(self.screen_stack) > 1:
            return False  # help or the palette is open: its keys are its own
        if action in ("confirm_yes", "confirm_no"):
            return self.mode == "confirm"
        if self.mode != "normal":
            return False
        if action == "abort":
            task = self._cursor_task()
            return task is not None and not task.status.is_ended
        # Answer keys stay live on every row: on one that is not asking they say so,
        # instead of doing nothing in silence.
        return True

    def _cursor_task(self) -> Task | None:
        try:
            return self.query_one(TaskTree).cursor_task
        except NoMatches:
            return None

    # ------------------------------------------------------------ answers

    def _asking(self) -> tuple[Task, int, list[str]] | None:
        """The highlighted task and the question it asks; None (said in a notice) if it asks none."""
        task = self._cursor_task()
        if task is None:
            self.notify("no task highlighted")
            return None
        if not is_asking(task) or task.blocked_on is None:
            self.notify(f"#{task.id} is not asking; b jumps to the next question",
                        severity="warning")
            return None
        return task, task.blocked_on.prompt_id, task.blocked_on.choices

    def _unseen(self, task: Task, choice: str) -> bool:
        """True (said in a notice) when `choice` would approve a question not yet read in full."""
        if verdict_of(task, choice) is not Verdict.APPROVED:
            return False
        hidden = self.query_one(PromptBar).unread_lines(task, self.view.path_of(task.id))
        if not hidden:
            return False
        self.notify(f"#{task.id}'s question has {hidden} more lines you have not seen: "
                    "e shows them; approve once you have read them", severity="warning")
        return True

    def action_approve(self) -> None:
        self.action_choose(1)

    def action_choose(self, number: int) -> None:
        asking = self._asking()
        if asking is None:
            return
        task, prompt_id, choices = asking
        if not 1 <= number <= len(choices):
            self.notify(f"#{task.id} offers {len(choices)} choices: keys 1-{len(choices)}",
                        severity="warning")
            return
        if not self._unseen(task, choices[number - 1]):
            self._send(task.id, prompt_id, choices[number - 1])

    def action_expand(self) -> None:
        """Show more of a long question: the next lines, then back to the short view."""
        task = self._cursor_task()
        if task is None or not is_asking(task):
            self._asking()  # says why nothing happens
            return
        self.query_one(PromptBar).expand()

    def action_deny(self) -> None:
        self._open_answer("reason", "deny reason")

    def action_reply(self) -> None:
        self._open_answer("reply", "reply")

    def _open_answer(self, mode: Mode, label: str) -> None:
        asking = self._asking()
        if asking is None:
            return
        task, prompt_id, _ = asking
        self._answering = (task.id, prompt_id)
        self.mode = mode
        bar = self.query_one(PromptBar)
        bar.show_prompt(task, self.view.path_of(task.id))
        bar.display = True
        self._focus_now(bar.open_input(label))
        self._sync_bindings(task)

    def _send_answer(self, typed: str) -> None:
        """Enter in the answer box: send the reply, or the denial with its reason."""
        if self._answering is None:
            return
        task_id, prompt_id = self._answering
        text = typed.strip()
        if self.mode == "reason":
            choices = self._choices_of(task_id, prompt_id)
            self._send(task_id, prompt_id, choices[-1] if choices else "deny",
                       reason=text or None)
        elif text:
            self._send(task_id, prompt_id, text)
        else:
            self.notify("type a reply first (Esc cancels)", severity="warning")
            return
        self._close_answer()

    def _close_answer(self) -> None:
        self._answering = None
        self.mode = "normal"
        self.query_one(PromptBar).close_input()
        tree = self.query_one(TaskTree)
        self._focus_now(tree)
        self._cursor_changed(refetch=False)

    def _choices_of(self, task_id: int, prompt_id: int) -> list[str]:
        prompt = self.view.mirror.prompts.get(prompt_id)
        if prompt is not None:
            return prompt.choices
        for closed in self.view.mirror.history.get(task_id, []):
            if closed.id == prompt_id:
                return closed.choices
        return []

    def _send(self, task_id: int, prompt_id: int, text: str, *, reason: str | None = None) -> None:
        self.run_worker(self._answer(task_id, prompt_id, text, reason), group="answer",
                        exit_on_error=False)

    async def _answer(self, task_id: int, prompt_id: int, text: str, reason: str | None) -> None:
        if self.client is None:
            return
        try:
            prompt = await self.client.answer(prompt_id, text, reason=reason)
        except TaskdeckError as exc:
            self.notify(f"#{task_id} not answered: {exc}", severity="error")
            return
        self.notify(answer_notice(prompt, text))

    # ------------------------------------------------------------- aborts

    def action_abort(self, only: bool = False) -> None:
        task = self.query_one(TaskTree).cursor_task
        if task is None or self.mode not in ("normal", "confirm"):
            return
        count = self.view.live_in_subtree(task.id, only=only)
        if count == 0:
            self.notify(f"#{task.id} and its sub-tasks have all ended: nothing to abort")
            return
        self._confirming = (task.id, only)
        self.mode = "confirm"
        self.query_one(ConfirmBar).ask(task, count, only=only)
        self.query_one(ConfirmBar).display = True
        self.query_one(PromptBar).display = False
        self._sync_bindings(task)

    def action_confirm_yes(self) -> None:
        if self._confirming is None:
            return
        task_id, only = self._confirming
        self._close_confirm()
        self.run_worker(self._abort(task_id, only), group="abort", exit_on_error=False)

    def action_confirm_no(self) -> None:
        self._close_confirm()

    def _close_confirm(self) -> None:
        self._confirming = None
        self.mode = "normal"
        self.query_one(ConfirmBar).display = False
        self._cursor_changed(refetch=False)

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

    # ------------------------------------------------------ moving, views

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

    def _go_to(self, task_id: int) -> None:
        """Move the cursor to a task the view has just revealed, and focus the tree."""
        if not self.view.filter_text:
            self._set_filter_box("")  # revealing it may have cleared the filter
        tree = self.query_one(TaskTree)
        tree.rows_changed()
        tree.move_to(task_id)
        self._focus_now(tree)
        self._draw_tree_title()

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

    def action_filter(self) -> None:
        if self.mode != "normal":
            return
        self.mode = "filter"
        bar = self.query_one(FilterBar)
        bar.display = True
        box = bar.query_one(InlineInput)
        box.value = self.view.filter_text
        self._focus_now(box)
        self._sync_bindings(self.query_one(TaskTree).cursor_task)

    @on(InlineInput.Changed, "#filter-input")
    def _on_filter_changed(self, event: InlineInput.Changed) -> None:
        event.stop()
        if self.mode == "filter":  # not a change that arrives after Enter or Esc
            self._apply_filter(event.value)

    def _apply_filter(self, typed: str) -> None:
        if self.view.filter_text == typed.strip():
            return
        self.view.filter_text = typed.strip()
        self.view.rebuild()
        self.query_one(TaskTree).rows_changed()
        self._draw_tree_title()

    def _leave_filter(self, *, keep: bool) -> None:
        self.mode = "normal"
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

    def _draw_tree_title(self) -> None:
        parts = ["Tasks"]
        if self.connection == "disconnected":
            parts.append("disconnected: last known state")
        if self.view.filter_text:
            parts.append(f"filter “{self.view.filter_text}”")
        if self.view.hide_finished:
            parts.append("finished hidden")
        title = " · ".join(parts)
        box = self.query_one("#tree-box")
        if box.border_title != title:
            box.border_title = title  # setting it repaints the box, even to the same text

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
        if event.key in ("enter", "escape"):
            sent = event.key == "enter"
            if box.id == "prompt-input":
                if sent:
                    self._send_answer(box.value)
                else:
                    self._close_answer()
            else:
                if sent:
                    self._apply_filter(box.value)
                self._leave_filter(keep=sent)
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

    def _focus_now(self, widget: Widget) -> None:
        """Focus at once, not after a refresh: keys typed next go where this one sent them.

        (`Widget.focus()` lands later: after `b r` it took the focus back from the box
        `r` had just opened.)
        """
        self.screen.set_focus(widget)

    def action_escape(self) -> None:
        if self.mode == "confirm":
            self._close_confirm()
        elif self.view.filter_text:
            self._leave_filter(keep=False)

    def action_help_quit(self) -> None:
        """Ctrl+C: say in plain words how to quit (Textual's own notice was markup)."""
        self.notify("press q (or ctrl+q) to quit the dashboard", title="ctrl+c does not quit")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # --------------------------------------------------------- reporting

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Show a notice and keep it in `notices` (the daemon's replies are never swallowed).

        Notices go to a line of their own above the bars, never over the tree or panes.
        """
        message = " ".join(message.splitlines())  # a notice is one line
        content = Content.from_markup(message) if markup else Content(message)
        self.notices.append((severity, content.plain))
        try:
            bar = self.query_one(NoticeBar)
        except NoMatches:
            return  # shutting down: kept in `notices` only
        bar.add(severity, content, title,
                self.NOTIFICATION_TIMEOUT if timeout is None else timeout)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.error is not None and worker.name != "connect":
            self.notify(f"internal error: {worker.error}", severity="error")


def make_app(
    runtime_dir: Path | None = None,
    *,
    client: Client | None = None,
    connect: Connect | None = None,
    clock: Callable[[], float] = time.time,
    theme: str | None = None,
    blink: bool = True,
) -> DeckApp:
    """Build the dashboard.

    Args:
        runtime_dir: Where the daemon's connection file is (default: the usual runtime dir).
        client: An entered client to use (its mirror is started by the app; the caller closes it).
        connect: Or a factory of an async context manager yielding the client (tests use it to
            start an in-process daemon inside the app's own event loop).
        clock: Source of "now" for elapsed times and the event rate.
        theme: A Textual theme name.
        blink: Blink the cursor of text boxes (off for deterministic screenshots).
    """
    if connect is None:
        if client is not None:
            connect = _borrow(client)
        else:
            connect = _own(runtime_dir)
    return DeckApp(connect, clock=clock, theme=theme, blink=blink)


def _borrow(client: Client) -> Connect:
    @contextlib.asynccontextmanager
    async def borrowed() -> AsyncIterator[Client]:
        yield client

    return borrowed


def _own(runtime_dir: Path | None) -> Connect:
    @contextlib.asynccontextmanager
    async def owned() -> AsyncIterator[Client]:
        from core.client import Client

        async with Client(runtime_dir, client_name="tui") as client:
            yield client

    return owned


def run_dashboard(runtime_dir: Path | None, *, theme: str | None = None) -> int:
    """Run the dashboard on the daemon of `runtime_dir` until the user quits.

    Returns:
        The exit code: 0 after a normal quit, 2 when the daemon cannot be reached
        (after printing one line that says why).
    """
    from core.runtime import default_runtime_dir, read_connection

    where = runtime_dir if runtime_dir is not None else default_runtime_dir()
    try:
        read_connection(where)
    except TaskdeckError as exc:
        print(f"taskdeck: {exc}", file=sys.stderr)
        return 2
    app = make_app(where, theme=theme)
    code = app.run()
    if app.failure is not None:
        print(f"taskdeck: cannot reach the daemon: {app.failure}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else (app.return_code or 0)
