"""Buttons for the answer and abort keys, for a narrow screen touched rather than typed on."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Button

from tui.modes import Mode

TOUCH_KEYS: list[tuple[str, str, str, frozenset[Mode]]] = [
    ("approve", "a approve", "approve", frozenset({Mode.NORMAL})),
    ("deny", "d deny", "deny", frozenset({Mode.NORMAL})),
    ("reply", "r reply", "reply", frozenset({Mode.NORMAL})),
    ("next", "b next ?", "next_blocked", frozenset({Mode.NORMAL})),
    ("abort", "x abort", "abort", frozenset({Mode.NORMAL})),
    ("detail", "i detail", "toggle_side", frozenset({Mode.NORMAL})),
    ("yes", "y abort", "confirm_yes", frozenset({Mode.CONFIRM})),
    ("no", "n keep", "confirm_no", frozenset({Mode.CONFIRM})),
    ("send", "⏎ send", "finish_box(True)", frozenset({Mode.REPLY, Mode.REASON, Mode.FILTER})),
    ("cancel", "esc cancel", "finish_box(False)",
     frozenset({Mode.REPLY, Mode.REASON, Mode.FILTER})),
]
"""(id, label, the app's action, the modes it shows in): the same actions the keys run,
so a tap obeys every rule a key does (a question not read to its end is not approved)."""


class TouchBar(Grid):
    """Two rows of buttons above the status bar, shown below 70 columns in place of the
    footer. They never take the focus: an answer box being typed in keeps it."""

    def compose(self) -> ComposeResult:
        for name, label, _, _ in TOUCH_KEYS:
            button = Button(label, id=f"touch-{name}", compact=True)
            button.can_focus = False
            yield button

    def on_mount(self) -> None:
        self.show_mode(Mode.NORMAL)

    def show_mode(self, mode: Mode) -> None:
        """Show only the buttons that act in this mode."""
        for name, _, _, modes in TOUCH_KEYS:
            self.query_one(f"#touch-{name}", Button).display = mode in modes

    @on(Button.Pressed)
    async def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {f"touch-{name}": action for name, _, action, _ in TOUCH_KEYS}
        await self.app.run_action(actions[event.button.id or ""])
