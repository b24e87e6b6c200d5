"""The bars at the foot of the main screen: inline prompt, abort confirmation, filter, status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, Sparkline, Static

from core.model import Task, TaskStatus
from tui.view import STATUS_LABELS, STATUS_ORDER, clip, format_tokens


class InlineInput(Input):
    """An input that says when Esc gives up on it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "send", key_display="⏎", id="input.send"),
        Binding("escape", "cancel", "cancel", id="input.cancel"),
    ]

    class Cancelled(Message):
        """Esc was pressed: close without sending."""

        def __init__(self, input: InlineInput) -> None:
            super().__init__()
            self.input = input

        @property
        def control(self) -> InlineInput:
            return self.input

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled(self))


class PromptBar(Vertical):
    """The highlighted task's question, its answer keys, and the inline answer box."""

    def compose(self) -> ComposeResult:
        yield Static(id="prompt-question")
        yield Static(id="prompt-keys")
        with Horizontal(id="prompt-typing"):
            yield Label(id="prompt-label")
            yield InlineInput(id="prompt-input", compact=True)

    def show_prompt(self, task: Task, path: Sequence[Task]) -> None:
        """Show the question a task waits on, who asks it, and the keys that answer it."""
        blocked = task.blocked_on
        if blocked is None:
            return
        parts: list[str | tuple[str, str]] = [("? ", "bold $warning"), (blocked.question, "bold"), "   "]
        for pos, step in enumerate(path):
            if pos:
                parts.append((" › ", "$text-muted"))
            parts.append((f"{step.agent}#{step.id}", "$text-muted" if step.id != task.id else ""))
        self.query_one("#prompt-question", Static).update(Content.assemble(*parts))
        key = "bold reverse $accent"
        keys: list[str | tuple[str, str]] = [(" a ", key), f" {blocked.choices[0]}  "]
        if len(blocked.choices) > 1:
            keys += [(" d ", key), f" {blocked.choices[-1]} (+reason)  "]
        if len(blocked.choices) > 2:  # two choices are a and d already
            for number, choice in enumerate(blocked.choices[:9], start=1):
                keys += [(f" {number} ", key), f" {choice}  "]
        keys += [(" r ", key), " reply with text"]
        keys = Content.assemble(*keys)
        self.query_one("#prompt-keys", Static).update(keys)

    def open_input(self, label: str) -> InlineInput:
        """Show the answer box labelled with what it sends; returns it to focus."""
        box = self.query_one("#prompt-input", InlineInput)
        box.value = ""
        box.placeholder = f"{label} (Enter to send, Esc to cancel)"
        self.query_one("#prompt-label", Label).update(f"{label} ›")
        self.add_class("-typing")
        return box

    def close_input(self) -> None:
        """Hide the answer box."""
        self.remove_class("-typing")
        self.query_one("#prompt-input", InlineInput).value = ""


DESCRIPTION_SHOWN = 60
"""Characters of a task's description quoted in the abort confirmation (a shell task's
description is its whole command)."""


class ConfirmBar(Static):
    """An abort waiting for `y` or `n`."""

    def ask(self, task: Task, count: int, *, only: bool) -> None:
        """Show what the abort would stop."""
        noun = "task" if count == 1 else "tasks"
        scope = " only (its sub-tasks keep running)" if only else " and its sub-tasks"
        key = "bold reverse $accent"
        description = clip(" ".join(task.description.split()), DESCRIPTION_SHOWN)
        text = Content.assemble(
            ("Abort ", "bold $error"),
            (f"#{task.id} {task.agent}", "bold"),
            f" “{description}”{scope}: ",
            (f"{count} live {noun} will stop.", "bold"),
            "   ",
            (" y ", key),
            " abort   ",
            (" n ", key),
            " keep",
        )
        self.update(text)


class FilterBar(Horizontal):
    """The `/` filter: rows whose text contains what is typed here."""

    def compose(self) -> ComposeResult:
        yield Label("/", id="filter-slash")
        yield InlineInput(
            placeholder="filter by id, agent, status or text (Enter keeps, Esc clears)",
            id="filter-input",
            compact=True,
        )


CONNECTION_STYLES = {
    "connecting": ("…", "$text-muted"),
    "live": ("●", "$success"),
    "stale": ("◌", "$warning"),
    "disconnected": ("✗", "$error"),
}


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

    def set_connection(self, state: str) -> None:
        """Show the client's connection state."""
        glyph, colour = CONNECTION_STYLES.get(state, ("?", "$text-muted"))
        self._set("status-connection", Content.assemble((f"{glyph} {state}", f"bold {colour}")))
        widget = self.query_one("#status-connection", Static)
        for name in CONNECTION_STYLES:
            widget.set_class(name == state, f"-{name}")

    def set_counts(self, counts: dict[TaskStatus, int], pending: int, tokens: int) -> None:
        """Show the per-status counts, pending prompts and total tokens."""
        parts: list[str | tuple[str, str]] = []
        for status in STATUS_ORDER:
            if parts:
                parts.append(" ")
            parts += [(f"{counts.get(status, 0)}", "bold"), (f" {STATUS_LABELS[status]}", "$text-muted")]
        self._set("status-counts", Content.assemble(*parts))
        self._set(
            "status-pending",
            Content.assemble(
                (f"? {pending}", "bold $warning" if pending else "$text-muted"),
                (" pending", "$text-muted"),
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
