"""The bars at the foot of the main screen: inline prompt, abort confirmation, filter, status."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Input, Label, Sparkline, Static

from core.client import ConnectionState
from core.glyphs import glyph_of
from core.model import EDIT, Action, Task, TaskStatus
from tui.actions import header as action_header
from tui.actions import render as render_action
from tui.view import (
    STATUS_LABELS,
    STATUS_ORDER,
    clip,
    denial_choice,
    format_tokens,
    numbers_shown,
    shown,
    shown_line,
)


class InlineInput(Input):
    """A one-line box whose keys the app types in as it reads them (`DeckApp._type`).

    Its bindings only label the footer: Enter and Esc are acted on by the app.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "send", key_display="⏎", id="input.send"),
        Binding("escape", "cancel", "cancel", id="input.cancel"),
    ]

    def __init__(self, **options: Any) -> None:
        # Selecting on focus selected what was typed before the focus event was read,
        # and the next key replaced it: keys typed in a burst after `r` were lost.
        super().__init__(select_on_focus=False, **options)


QUESTION_LINES = 3
"""Lines of the prompt bar a question may take before it is cut (with a marked cut)."""

QUESTION_ROWS = 2
"""Rows the bar's upper part always takes, asking or not: a one-line question and who
asks it, an action's question and its command, or the highlighted task in two lines."""


class PromptBar(Vertical):
    """The highlighted task's question, its answer keys, and the inline answer box; on a
    row that asks nothing, that task in two lines and how to reach a question.

    The bar is always laid out and keeps its height (`QUESTION_ROWS` and a line of keys)
    as the cursor moves: shown and hidden, it resized the tree and panes above it, and
    every key onto or off an asking row redrew the whole screen (~46 KB at 130x40, a
    key-to-screen p99 of 245 ms). Its parts ask for a layout pass only when their number
    of rows changes (a longer question, an expanded one, the answer box).

    A question longer than `QUESTION_LINES` is cut with a line that says how much is
    not shown; `e` pages through the rest. The ids of questions shown to their last
    line are kept in `seen`: the app approves only those.
    """

    def compose(self) -> ComposeResult:
        yield Static(id="prompt-question")
        yield Static(id="prompt-keys")
        with Horizontal(id="prompt-typing"):
            yield Label(id="prompt-label")
            yield InlineInput(id="prompt-input", compact=True)
        yield Static(id="prompt-remember")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prompt_id: int | None = None
        """The question shown (or last shown, while the bar shows a task that asks none)."""
        self.asking = False
        """Whether the bar shows a question (else the highlighted task, or nothing)."""
        self.seen: set[int] = set()
        """Questions whose every line has been on screen."""
        self.hidden_lines = 0
        """Lines of the shown question below what is on screen now."""
        self._question = Content("")
        self._asker = Content("")
        """The asking task's description: fills the bar's second row under a one-line question."""
        self._about: tuple[Content, Content] = (Content(""), Content(""))
        """The highlighted task that asks nothing, in two lines (drawn cut to the bar's width)."""
        self._top = 0
        """First line shown while expanded."""
        self._expanded = False
        self._rows: dict[str, int] = {}
        """Rows each part was last drawn with: a change of rows alone needs a layout pass."""
        self._drawn: dict[str, tuple[Content, int]] = {}
        """What each part was last drawn with, and at what width."""

    def on_mount(self) -> None:
        self.show_context(None, [])  # the height it keeps, before any task is highlighted

    def _put(self, part: str, content: Content) -> None:
        """Draw one part of the bar, if it changed (the highlighted task's every token update
        syncs the bar); a layout pass (of the whole screen) only if its height changed,
        else a repaint of that part alone."""
        width = self._width()
        if self._drawn.get(part) == (content, width):
            return
        self._drawn[part] = (content, width)
        rows = len(content.wrap(width))
        layout = self._rows.get(part) != rows
        self._rows[part] = rows
        self.query_one(f"#{part}", Static).update(content, layout=layout)

    def _width(self) -> int:
        # Before its first layout the bar has no width: assume the screen's, less the
        # bar's edge and padding.
        return self.content_region.width or max(10, self.app.size.width - 3)

    def show_context(self, task: Task | None, path: Sequence[Task]) -> None:
        """Show a task that asks nothing (or that no task is highlighted), in the rows a
        question takes, and the key that reaches one."""
        self.asking = False
        self._look(idle=True)
        if task is None:
            self._about = (Content.styled("no task highlighted", "$text-muted"), Content(""))
        else:
            head: list[str | tuple[str, str]] = [
                (f"{glyph_of(task)} #{task.id} {shown_line(task.agent)}", "bold"), "  ",
                shown_line(task.description)]
            if len(path) > 1:
                head += ["   ", (" › ".join(f"{shown_line(t.agent)}#{t.id}" for t in path[:-1]),
                                 "$text-muted")]
            self._about = (Content.assemble(*head), self._state_line(task))
        self._draw_context()
        self._put("prompt-keys", Content.styled(
            "questions from agents and scripts show here, with the keys that answer them",
            "$text-muted") if task is None else Content.assemble(
            ("no question on this row", "$text-muted"), "  ", (" b ", "bold reverse $accent"),
            (" jumps to the next one", "$text-muted")))

    def _look(self, *, idle: bool) -> None:
        """The quiet colours of a bar with no question, or the question's.

        Only the bar itself is restyled: a class change restyles every node under it too
        (the answer box's among them), about a third of what a move cost, and no style
        under the bar depends on this class.
        """
        if self.has_class("-idle") != idle:
            self.set_class(idle, "-idle", update=False)
            self.app.stylesheet.update_nodes([self])
            for part in self.query("*"):  # their colours are blended with the bar's
                part.notify_style_update()
                part.refresh()

    @staticmethod
    def _state_line(task: Task) -> Content:
        """Where the task stands, and the last thing it did, said, or failed with."""
        if task.end_reason is not None:
            state = f"{STATUS_LABELS[task.status]} ({task.end_reason.value})"
        elif task.status is TaskStatus.BLOCKED:
            state = "waiting on its sub-tasks"
        else:
            state = STATUS_LABELS[task.status]
        parts: list[str | tuple[str, str]] = [(state, "bold $text-muted")]
        for said, style in ((task.progress, "$text-muted"), (task.result, "$success"),
                            (task.error, "$error")):
            if said:
                parts += [("  ·  ", "$text-muted"), (shown_line(said), style)]
        return Content.assemble(*parts)

    def _draw_context(self) -> None:
        width = self._width()
        self._put("prompt-question", Content("\n").join(
            line.truncate(width, ellipsis=True) for line in self._about))

    def show_prompt(self, task: Task, path: Sequence[Task], action: Action | None = None) -> None:
        """Show the question a task waits on, who asks it, the action it asks leave for,
        and the keys that answer it."""
        blocked = task.blocked_on
        if blocked is None:
            return
        if blocked.prompt_id != self.prompt_id:
            self.prompt_id = blocked.prompt_id
            self._top = 0
            self._expanded = False
        self.asking = True
        self._look(idle=False)
        self._question = self._content(task, path, action)
        self._asker = Content.styled(f"{shown_line(task.agent)}#{task.id}: "
                                     f"{shown_line(task.description)}", "$text-muted")
        self._draw_question()
        key = "bold reverse $accent"
        choices = [shown_line(choice) for choice in blocked.choices]
        if action is not None:  # picking edit opens the action's input first
            choices = [f"{c}…" if c == EDIT else c for c in choices]
        keys: list[str | tuple[str, str]] = [(" a ", key), f" {choices[0]}  "]
        denial = denial_choice(blocked.choices)
        if denial is not None:
            keys += [(" d ", key), f" {shown_line(denial)} (+reason)  "]
        if numbers_shown(blocked.choices):  # else a and d name every choice already
            for number, choice in enumerate(choices[:9], start=1):
                keys += [(f" {number} ", key), f" {choice}  "]
        keys += [(" r ", key), " reply with text (not an approval)"]
        self._put("prompt-keys", Content.assemble(*keys))

    @staticmethod
    def _content(task: Task, path: Sequence[Task], action: Action | None = None) -> Content:
        """The question, then the path of the task that asks it, then the action in full
        (cut and expanded with the question: an approval waits until all of it was seen)."""
        assert task.blocked_on is not None
        parts: list[str | tuple[str, str]] = [
            ("? ", "bold $warning"), (shown(task.blocked_on.question), "bold"), "   "]
        for pos, step in enumerate(path):
            if pos:
                parts.append((" › ", "$text-muted"))
            parts.append((f"{shown_line(step.agent)}#{step.id}",
                          "$text-muted" if step.id != task.id else ""))
        if action is None:
            return Content.assemble(*parts)
        # The header joins the question's line: every line the bar saves is one less to
        # page through before `a` approves.
        question = Content.assemble(*parts, "   ", action_header(action))
        return question + "\n" + render_action(action, with_header=False)

    def unread_lines(self, task: Task, path: Sequence[Task], action: Action | None = None) -> int:
        """Lines of the task's question never on screen: 0 once seen, or if it fits the bar.

        Asked of the task itself, not of what the bar shows now: after `j a` typed in one
        burst the bar may not have caught up with the cursor yet.
        """
        if task.blocked_on is None or task.blocked_on.prompt_id in self.seen:
            return 0
        if task.blocked_on.prompt_id == self.prompt_id:
            return self.hidden_lines
        lines = len(self._lines(self._content(task, path, action)))
        return 0 if lines <= QUESTION_LINES else lines - (QUESTION_LINES - 1)

    def expand(self) -> None:
        """Show the next lines of a cut question; after the last, the short view again."""
        lines = len(self._lines())
        page = self._page()
        if not self._expanded:
            self._expanded, self._top = True, 0
        elif self._top + page < lines:
            self._top += page
        else:
            self._expanded, self._top = False, 0
        self._draw_question()

    def on_resize(self) -> None:
        if self.asking:
            self._draw_question()
        else:
            self._draw_context()

    def _lines(self, question: Content | None = None) -> list[Content]:
        return (self._question if question is None else question).wrap(self._width())

    def _page(self) -> int:
        """Lines of question the expanded bar shows at once (one more is its marker)."""
        return max(QUESTION_LINES, self.app.size.height // 2 - 1)

    def _draw_question(self) -> None:
        lines = self._lines()
        marker: Content | None = None
        flag = "bold reverse $warning"
        if self._expanded:
            page = self._page()
            shown = lines[self._top : self._top + page]
            end = self._top + len(shown)
            if end < len(lines):
                marker = Content.styled(
                    f" lines {self._top + 1}–{end} of {len(lines)}: "
                    f"{len(lines) - end} more — e shows the next ", flag)
            elif len(lines) > QUESTION_LINES:
                marker = Content.styled(f" end of the question ({len(lines)} lines) — "
                                        "e shortens it ", "bold $warning")
        elif len(lines) > QUESTION_LINES:
            shown = lines[: QUESTION_LINES - 1]
            end = len(shown)
            marker = Content.styled(
                f" … {len(lines) - end} more lines not shown — e to expand "
                "(a waits until you have seen them) ", flag)
        else:
            shown, end = lines, len(lines)
        self.hidden_lines = len(lines) - end
        if self.hidden_lines == 0 and self.prompt_id is not None:
            self.seen.add(self.prompt_id)
        if marker is not None:
            shown = [*shown, marker]
        if len(shown) < QUESTION_ROWS:  # the row the bar keeps anyway: who asks, doing what
            shown = [*shown, self._asker.truncate(self._width(), ellipsis=True)]
        self._put("prompt-question", Content("\n").join(shown))

    def open_input(self, label: str, text: str = "") -> InlineInput:
        """Show the answer box labelled with what it sends, holding `text`; returns it to focus."""
        box = self.query_one("#prompt-input", InlineInput)
        box.value = text
        box.cursor_position = len(text)
        box.placeholder = f"{label} (Enter to send, Esc to cancel)"
        self.query_one("#prompt-label", Label).update(f"{label} ›")
        self.add_class("-typing")
        return box

    def show_remember(self, options: str) -> None:
        """Under the box, the rule editor's scope and expiry, and the keys that change them."""
        self.query_one("#prompt-remember", Static).update(Content.styled(options, "$text-muted"))
        self.add_class("-remember")

    def close_input(self) -> None:
        """Hide the answer box (and the rule editor's line)."""
        self.remove_class("-typing", "-remember")
        self.query_one("#prompt-input", InlineInput).value = ""


NOTICES_SHOWN = 2
"""Notices on screen at once (the newest); older ones make way."""

SEVERITY_STYLES = {
    "error": ("✗ ", "bold $error"),
    "warning": ("! ", "bold $warning"),
    "information": ("· ", "$text-muted"),
}


class NoticeBar(Static):
    """The latest notices on one line, newest first, between the tree and the prompt bar.

    Floating toasts covered the tree's time and token columns and the top of the
    detail pane for seconds at a time; a line of its own hides nothing. The line is
    always laid out, empty or not (a phone hides it when empty): shown and hidden, it
    resized the tree and panes, and each answer and each new question redrew the whole
    screen twice, for its notice and for the notice's expiry.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")
        self._live: list[tuple[float, Content]] = []
        """(expiry as `time.monotonic()`, line), oldest first."""

    def add(self, severity: str, message: Content, title: str, timeout: float) -> None:
        """Show a notice for `timeout` seconds (or until newer ones push it off)."""
        glyph, style = SEVERITY_STYLES.get(severity, SEVERITY_STYLES["information"])
        parts: list[Content | tuple[str, str]] = [(glyph, style)]
        if title:
            parts.append((f"{title}: ", style))
        line = Content.assemble(*parts, message)
        self._live = [*self._live, (time.monotonic() + timeout, line)][-NOTICES_SHOWN:]
        self.set_timer(timeout, self._expire)
        self._draw()

    def clear(self) -> None:
        """Drop every notice now (a screenshot must not depend on how long a run took)."""
        self._live = []
        self._draw()

    def _expire(self) -> None:
        now = time.monotonic()
        self._live = [(until, line) for until, line in self._live if until > now]
        self._draw()

    def _draw(self) -> None:
        self.set_class(not self._live, "-empty")
        self.update(Content("   ").join(line for _, line in reversed(self._live)), layout=False)


DESCRIPTION_SHOWN = 60
"""Characters of a task's description quoted in the abort confirmation (a shell task's
description is its whole command)."""


class ConfirmBar(Static):
    """An abort waiting for `y` or `n`."""

    def ask(self, task: Task, count: int, *, only: bool) -> None:
        """Show what the abort would stop, on one line (the description is cut to fit)."""
        noun = "task" if count == 1 else "tasks"
        scope = " alone (sub-tasks go on)" if only else " and its sub-tasks"
        key = "bold reverse $accent"
        head = [("Abort ", "bold $error"), (f"#{task.id} {shown_line(task.agent)}", "bold")]
        tail = [
            f"{scope}: ",
            (f"{count} live {noun} will stop.", "bold"),
            "  ",
            (" y ", key),
            " abort  ",
            (" n ", key),
            " keep",
        ]
        fixed = Content.assemble(*head, *tail).cell_length
        width = self.content_region.width or max(20, self.app.size.width - 3)
        room = min(DESCRIPTION_SHOWN, width - fixed - 3)
        description = shown_line(task.description)
        quoted = [f" “{clip(description, room)}”"] if room >= 8 else []
        self.update(Content.assemble(*head, *quoted, *tail))


class FilterBar(Horizontal):
    """The `/` filter: rows whose text contains what is typed here."""

    def compose(self) -> ComposeResult:
        yield Label("/", id="filter-slash")
        yield InlineInput(
            placeholder="filter by id, agent, status or text (Enter keeps, Esc clears)",
            id="filter-input",
            compact=True,
        )


CONNECTION_STYLES: dict[ConnectionState, tuple[str, str]] = {
    ConnectionState.CONNECTING: ("…", "$text-muted"),
    ConnectionState.LIVE: ("●", "$success"),
    ConnectionState.STALE: ("◌", "$warning"),
    ConnectionState.DISCONNECTED: ("✗", "$error"),
}
"""The glyph and colour of each connection state in the status bar."""


class StatusBar(Horizontal):
    """Connection state, counts per status, tokens, event rate and pending prompts.

    Every part is redrawn only when its text changed, and asks for a layout pass
    of the screen only when its width changed: under a stream of events the counts
    change many times a second, and a layout pass redraws far more than the bar.
    """

    def compose(self) -> ComposeResult:
        yield Static(id="status-connection")
        yield Static(id="status-counts")
        yield Static(id="status-pending")
        yield Static(id="status-tokens")
        yield Sparkline([], id="status-rate-spark")
        yield Static(id="status-rate")

    def on_mount(self) -> None:
        self._shown: dict[str, Content] = {}

    def _set(self, part: str, content: Content) -> None:
        old = self._shown.get(part)
        if old == content:
            return
        self._shown[part] = content
        layout = old is None or old.cell_length != content.cell_length
        self.query_one(f"#{part}", Static).update(content, layout=layout)

    def set_connection(self, state: ConnectionState) -> None:
        """Show the client's connection state."""
        glyph, colour = CONNECTION_STYLES[state]
        self._set("status-connection",
                  Content.assemble((f"{glyph} {state.value}", f"bold {colour}")))
        widget = self.query_one("#status-connection", Static)
        for each in CONNECTION_STYLES:
            widget.set_class(each is state, f"-{each.value}")

    def set_counts(self, counts: dict[TaskStatus, int], asking: int, tokens: int) -> None:
        """Show the per-status counts, questions waiting on a person, and total tokens.

        Blocked tasks are split in two: those waiting on their sub-tasks ("waiting"),
        and those asking a person ("? N asking", what `b` visits).
        """
        parts: list[str | tuple[str, str]] = []
        for status in STATUS_ORDER:
            count = counts.get(status, 0)
            label = STATUS_LABELS[status]
            if status is TaskStatus.BLOCKED:
                count, label = max(0, count - asking), "waiting"
            if parts:
                parts.append(" ")
            parts += [(f"{count}", "bold"), (f" {label}", "$text-muted")]
        self._set("status-counts", Content.assemble(*parts))
        self._set(
            "status-pending",
            Content.assemble(
                (f"? {asking}", "bold $warning" if asking else "$text-muted"),
                (" asking", "$text-muted"),
            ),
        )
        self._set(
            "status-tokens",
            Content.assemble((format_tokens(tokens), "bold"), (" tok", "$text-muted")),
        )

    def set_rate(self, buckets: list[float]) -> None:
        """Show events per second over the last complete seconds (newest last)."""
        spark = self.query_one("#status-rate-spark", Sparkline)
        if list(spark.data or []) != buckets:
            spark.data = buckets
        last = int(buckets[-1]) if buckets else 0
        self._set("status-rate", Content.assemble((f"{last}", "bold"), (" ev/s", "$text-muted")))
