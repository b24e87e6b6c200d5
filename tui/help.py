"""The `?` help screen and the command palette entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from core.glyphs import LOOKS, Shown

Command = tuple[str, str, Callable[[], object]]
"""A palette entry: its name, what it does, and the call that does it."""


class Commanded(Protocol):
    """An app that lists its own commands for the palette."""

    def palette_commands(self) -> list[Command]: ...


KEYS: tuple[tuple[str, str, str], ...] = (
    ("Move", "j / ↓, k / ↑", "next / previous task"),
    ("Move", "PgDn, PgUp, g, G", "page down / up, first, last"),
    ("Move", "enter", "fold or unfold the highlighted task's sub-tasks"),
    ("Move", "← / h, → / l", "fold (or go to parent), unfold"),
    ("Move", "b", "jump to the next task asking a question (cycles; skips ◐ waits)"),
    ("Move", "tab", "tree → detail (↑ ↓ scroll) → inbox (enter: go to the task)"),
    ("Answer", "a", "answer with the first choice (approve), once the whole question was shown"),
    ("Answer", "e", "show the rest of a question cut short (again: next lines)"),
    ("Answer", "d", "answer with the choice that refuses (deny), with an optional reason"),
    ("Answer", "1 – 9", "answer with that numbered choice (edit…: change the input first)"),
    ("Answer", "r", "reply with free text (never an approval); Enter sends, Esc cancels"),
    ("Answer", "A / D", "approve / deny and remember as a rule (tab: scope, ctrl+e: expiry)"),
    ("Abort", "x", "abort the highlighted task and its sub-tasks (asks y / n)"),
    ("Abort", "X", "abort only the highlighted task (asks y / n)"),
    ("Abort", "y / n", "confirm / keep (Esc also keeps)"),
    ("View", "/", "filter by id, agent, status or text; Enter keeps, Esc clears"),
    ("View", "f", "hide / show finished work"),
    ("View", "i", "show / hide the detail and inbox panes (narrow terminals)"),
    ("View", "R", "approval rules: scope, hits, last use; f filters by agent, x deletes"),
    ("View", "ctrl+p", "command palette (themes, abort, jump, ...)"),
    ("View", "?", "this help"),
    ("View", "q", "quit"),
)
"""Every key of the dashboard: section, key, what it does."""

LEGEND: tuple[tuple[Shown, str], ...] = (
    (Shown.QUEUED, "queued"),
    (Shown.RUNNING, "running"),
    (Shown.ASKING, "asks you"),
    (Shown.WAITING, "waits for sub-tasks"),
    (Shown.FINISHED, "done"),
    (Shown.FAILED, "failed"),
)
"""The row glyphs the help explains, in the words of the help."""


class HelpScreen(ModalScreen[None]):
    """Every key, grouped; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        parts: list[str | tuple[str, str]] = []
        section = ""
        for group, key, what in KEYS:
            if group != section:
                if section:
                    parts.append("\n")
                parts.append((f"{group}\n", "bold $accent"))
                section = group
            parts.append((f"  {key:<18}", "bold"))
            parts.append(f"{what}\n")
        parts.append(("\nStatus bar: ", "bold"))
        parts.append(
            "connection (live / stale / disconnected), tasks per status\n"
            "     (waiting: on sub-tasks), ? tasks asking you, tokens, events per second.\n"
        )
        parts.append(("Row: ", "bold"))
        legend = "  ".join(f"{LOOKS[shown].glyph} {words}" for shown, words in LEGEND)
        parts.append(f"{legend};\n     time, own tokens, Σ tokens with sub-tasks.")
        with VerticalScroll(id="help-body") as body:
            body.border_title = "taskdeck keys"
            body.border_subtitle = "Esc closes"
            yield Static(Content.assemble(*parts), id="help-text")


class DeckCommands(Provider):
    """Dashboard actions in the command palette: the ones the app lists."""

    def _commands(self) -> list[Command]:
        return cast(Commanded, self.app).palette_commands()

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
