"""Buttons for the answer and abort keys, for a narrow screen touched rather than typed on."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Button

from core.text import one_line
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

CHOICES = 9
"""Numbered choices that get a button (keys 1-9), shown when a question offers more than
two (two are approve and deny already)."""

LABEL_CHARS = 14
"""Characters of a choice on its button (a third of a phone's width)."""


class TouchBar(Grid):
    """Rows of buttons above the status bar, shown below 70 columns in place of the footer.
    They never take the focus: an answer box being typed in keeps it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Mode, tuple[str, ...]] | None = None

    def compose(self) -> ComposeResult:
        for name, label, _, _ in TOUCH_KEYS:
            yield self._button(f"touch-{name}", label)
        for number in range(1, CHOICES + 1):
            yield self._button(f"touch-choice-{number}", str(number))

    @staticmethod
    def _button(id: str, label: str) -> Button:
        button = Button(label, id=id, compact=True)
        button.can_focus = False
        return button

    def on_mount(self) -> None:
        self.show_mode(Mode.NORMAL)

    def show_mode(self, mode: Mode, choices: Sequence[str] = ()) -> None:
        """Show only the buttons that act in this mode, and one per choice of the highlighted
        question when it has more than two."""
        if self._shown == (mode, tuple(choices)):
            return
        self._shown = (mode, tuple(choices))
        for name, _, _, modes in TOUCH_KEYS:
            self.query_one(f"#touch-{name}", Button).display = mode in modes
        numbered = choices if mode is Mode.NORMAL and len(choices) > 2 else ()
        for number in range(1, CHOICES + 1):
            button = self.query_one(f"#touch-choice-{number}", Button)
            button.display = number <= len(numbered)
            if button.display:
                choice = one_line(numbered[number - 1])
                if len(choice) > LABEL_CHARS:
                    choice = choice[: LABEL_CHARS - 1] + "…"
                button.label = f"{number} {choice}"

    @on(Button.Pressed)
    async def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        name = event.button.id or ""
        if name.startswith("touch-choice-"):
            await self.app.run_action(f"choose({int(name.rpartition('-')[2])})")
            return
        actions = {f"touch-{key}": action for key, _, action, _ in TOUCH_KEYS}
        await self.app.run_action(actions[name])
