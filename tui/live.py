"""The dashboard as a live picture: layout, connection, frames of changes, cursor and detail.

`LiveDeck` shows the daemon's tasks as they change and follows the cursor; it has no
keys of its own. `tui.deck.DeckApp` adds them. Changes from the client are collected
by `Frames` and applied at most once per frame, touching only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker

from core.client import ConnectionState
from core.errors import BadRequest, InvalidState, TaskdeckError
from core.mirror import Mirror
from core.model import Prompt, Task
from tui.frames import Frame, Frames
from tui.view import TreeView, clip, shown, shown_line
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
from tui.widgets.touch import TouchBar

if TYPE_CHECKING:
    from core.client import Changes, Client
    from core.protocol import Decision

Connect = Callable[[], AbstractAsyncContextManager["Client"]]
"""Makes the client the app talks through; entered when the app starts, exited when it stops."""

DETAIL_DELAY = 0.1
"""Seconds the cursor rests on a task before its prompts and decisions are fetched, so
holding j/k sends one request for where it stops, not one per row passed."""

PHONE_COLUMNS = 70
"""Narrower than this (a phone: ~41 columns at 390 px), the dashboard is one column."""

DECISIONS_SHOWN = 50
"""Latest decisions (answers, aborts) fetched for the detail pane."""


class LiveDeck(App[int]):
    """The taskdeck dashboard, read-only.

    The client's mirror is the state; widgets draw from it through a `TreeView`.
    The client calls `_on_change` for each batch of events; ids are collected and
    applied at most once per frame inside `batch_update`, touching only rows that
    changed.
    """

    CSS_PATH = "deck.tcss"
    TITLE = "taskdeck"
    NOTIFICATION_TIMEOUT = 4
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-phone"), (PHONE_COLUMNS, "-narrow"), (100, "-medium"), (110, "-wide"),
    ]
    """Below 100 columns the tree takes the whole width; `i` brings the side panes back.
    Below `PHONE_COLUMNS`: one column, the inbox above the tree, and touch buttons."""

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
        self.frames = Frames(clock)
        self.ready = False
        """True once the first snapshot is on screen."""
        self.failure: str | None = None
        """Why the app could not start, for `run_dashboard` to print."""
        self.connection = ConnectionState.CONNECTING
        """The client's connection state, as last told."""
        self.journal_error: str | None = None
        """Why the daemon cannot record decisions, as the client last heard; None if it can."""
        self.notices: list[tuple[str, str]] = []
        """Every notification shown (severity, text), oldest first."""
        self.bells = 0
        self._tree: TaskTree | None = None
        self._detail_sig: object = None
        self._detail_timer: Timer | None = None
        self._header_width: int | None = None
        self._journal_kept = True
        """False once the daemon said it keeps no journal: stop asking for decisions."""
        self._mounted = asyncio.Event()
        """Set once the widgets are mounted: frames wait for it (the client starts before)."""

    @property
    def seen_seq(self) -> int | None:
        """The registry seq the app has been told about (for scripts that drive the scene)."""
        return self.frames.seq

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
        yield TouchBar(id="touch-bar")
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
        self._tree = self.query_one(TaskTree)
        self._tree.focus()
        self.set_interval(1.0, self._tick)
        self._mounted.set()

    def on_load(self) -> None:
        """Connect before the widgets exist: the daemon sends the snapshot while they are made.

        (Started on mount, the late join of 100,000 tasks waited for ~0.1 s of layout
        and styles first.)
        """
        self.run_worker(self._start(), name="connect", exit_on_error=False)

    async def _start(self) -> None:
        """Connect and sync, then show the tree once the widgets are mounted.

        Cancelled (the app leaves, maybe before it mounted), it ends at once: waiting for
        a mount that will never come would hang the worker past its cancellation.
        """
        failure: str | None = None
        try:
            self.client = await self._stack.enter_async_context(self._connect())
            self.view.mirror = self.client.mirror
            await self.client.start_mirror(self._on_change)
            await self.client.wait_synced(timeout=self._sync_timeout)
        except (TaskdeckError, TimeoutError) as exc:
            failure = str(exc) or "the daemon did not answer"
        except Exception:
            await self._mounted.wait()  # the widgets, for the error's report
            raise
        await self._mounted.wait()  # the widgets to show it, or the failure, on
        if failure is not None:
            self.failure = failure
            self.exit(return_code=2)
            return
        self.query_one(TaskTree).connecting = False
        self.frames.redraw_all()
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
        self.connection = changes.state
        seq = self.client.mirror.seq if self.client is not None else None
        wait = self.frames.collect(changes, seq, started=self.ready, now=time.monotonic())
        if wait is None:
            return  # a frame is due already
        if wait > 0:
            self.set_timer(wait, self._flush)
        else:
            self.call_later(self._flush)

    def _flush(self) -> None:
        """Apply every change collected since the last frame, touching only what changed."""
        if not self._mounted.is_set():
            return  # kept for the first frame, which `_start` draws once the widgets are up
        frame = self.frames.take(time.monotonic())
        if self.client is None:
            return
        try:
            self._draw_frame(frame, self.query_one(TaskTree))
        except NoMatches:
            return  # shutting down: widgets leave one by one, a frame may land between

    def _draw_frame(self, frame: Frame, tree: TaskTree) -> None:
        """One frame's changes onto the tree, inbox, status bar and header."""
        assert self.client is not None
        with self.batch_update():
            if frame.resync:
                self._journal_kept = True  # maybe a restarted daemon, now with a journal
                self.view.mirror = self.client.mirror
                self.view.reset()
                tree.rows_changed()
                self.call_after_refresh(self._settle_heap)
            elif frame.dirty:
                if self.view.apply(frame.dirty):
                    tree.rows_changed()
                else:
                    tree.tasks_changed(frame.dirty)
            self.query_one(Inbox).redraw()
            self._draw_status()
            if frame.resync or tree.cursor_id in frame.dirty:
                self._cursor_changed(refetch=False)
            self._draw_header()
        if frame.opened and not frame.resync:
            self._announce(frame.opened)

    @staticmethod
    def _settle_heap() -> None:
        """Collect once, then leave what a snapshot built out of later collections.

        A snapshot leaves a large heap of long-lived objects (the mirror's indexes,
        widgets); every full collection walked all of it, a pause of ~25 ms that landed
        in front of whatever key was pressed. Frozen objects are still freed by
        reference counting when dropped. Done right after the snapshot's first frame is
        on screen: before it, the collection (~30 ms with 100,000 tasks) held the tree
        back from the person waiting for it.
        """
        gc.collect()
        gc.freeze()

    def _announce(self, opened: list[Prompt]) -> None:
        self.bells += 1
        self.bell()
        for prompt in opened[:3]:
            path = " › ".join(t.agent for t in self.view.path_of(prompt.task_id))
            first, *more = shown(prompt.question).splitlines() or [""]
            lines = f" (+{len(more)} lines)" if more else ""
            self.notify(f"{path}: {clip(first, 90)}{lines}",
                        title=f"#{prompt.task_id} asks (b jumps)", severity="warning")
        if len(opened) > 3:
            self.notify(f"and {len(opened) - 3} more questions", severity="warning")

    def _tick(self) -> None:
        """Once a second: connection state, event rate, elapsed times."""
        if self.client is not None:
            self.connection = self.client.state
            self._journal_told(self.client.journal_error)
        try:
            with self.batch_update():
                self._draw_status()
                self.query_one(TaskTree).refresh_visible()
                self.query_one(DetailPane).redraw()
        except NoMatches:
            return  # shutting down: widgets leave one by one, the timer may fire between

    def _draw_status(self) -> None:
        self._draw_tree_title()
        bar = self.query_one(StatusBar)
        bar.set_connection(self.connection)
        asking = len(self.view.mirror.prompts)
        bar.set_counts(self.view.counts, asking, self.view.total_tokens)
        bar.set_rate(self.frames.rate())

    def _journal_told(self, error: str | None) -> None:
        """Say at once, and keep saying in the tree's title, that decisions are refused."""
        if error == self.journal_error:
            return
        self.journal_error = error
        if error is not None:
            self.notify(f"the daemon cannot record decisions ({error}); answers and aborts "
                        "are refused until it is restarted", title="journal failed",
                        severity="error")

    def _draw_tree_title(self) -> None:
        parts = ["Tasks"]
        if self.connection is ConnectionState.DISCONNECTED:
            parts.append("disconnected: last known state")
        if self.journal_error is not None:
            parts.append("JOURNAL FAILED: decisions refused")
        if self.view.filter_text:
            parts.append(f"filter “{shown_line(self.view.filter_text)}”")
        if self.view.hide_finished:
            parts.append("finished hidden")
        title = " · ".join(parts)
        box = self.query_one("#tree-box")
        if box.border_title != title:
            box.border_title = title  # setting it repaints the box, even to the same text

    # ------------------------------------------------------ cursor, detail

    @on(TaskTree.Highlighted)
    def _on_highlighted(self, event: TaskTree.Highlighted) -> None:
        self._cursor_moved(event.task_id)
        self._cursor_changed(refetch=True)

    def _cursor_moved(self, task_id: int | None) -> None:
        """The cursor moved to another task; the panes follow it next (a hook for the keys)."""

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
        self._sync_to_cursor(task)

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

    def _sync_to_cursor(self, task: Task | None) -> None:
        """Bring what follows the highlighted task up to date (a hook for the keys)."""

    def _cursor_task(self) -> Task | None:
        """The highlighted task, if any."""
        return self._tree.cursor_task if self._tree is not None else None

    # --------------------------------------------------------- reporting

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Show a notice and keep it in `notices` (the daemon's replies are never swallowed).

        Notices go to a line of their own above the bars, never over the tree or panes.
        """
        # A notice is one line, and quotes the daemon's text (a question, an error) as drawn.
        message = " ".join(shown(message).splitlines())
        content = Content.from_markup(message) if markup else Content(message)
        self.notices.append((severity, content.plain))
        try:
            bar = self.query_one(NoticeBar)
        except NoMatches:
            return  # shutting down: kept in `notices` only
        bar.add(severity, content, shown_line(title),
                self.NOTIFICATION_TIMEOUT if timeout is None else timeout)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.error is not None and worker.name != "connect":
            self.notify(f"internal error: {worker.error}", severity="error")

