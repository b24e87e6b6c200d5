"""The rules screen (`R`): every approval rule with its scope, hits and last use; `f` filters
by agent, `x` deletes after a `y`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.errors import TaskdeckError
from core.policy import Rule
from tui.view import format_elapsed, shown_line

if TYPE_CHECKING:
    from tui.deck import DeckApp

COLUMNS = ("id", "effect", "pattern", "agent", "scope", "hits", "last used", "expires",
           "added by")


class RulesScreen(Screen[None]):
    """Every rule the daemon holds, as it holds them: fetched on open, after a delete, on `r`."""

    CSS_PATH = "rules.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "cycle_agent", "agent filter", id="rules.agent"),
        Binding("x,delete", "delete", "delete", id="rules.delete"),
        Binding("y", "confirm(True)", "yes, delete", id="rules.yes"),
        Binding("n", "confirm(False)", "no", id="rules.no"),
        Binding("r", "refresh", "refresh", id="rules.refresh"),
        Binding("escape,R", "close", "back", id="rules.close"),
        Binding("j", "move(1)", "down", show=False, id="rules.down"),
        Binding("k", "move(-1)", "up", show=False, id="rules.up"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rules: list[Rule] = []
        self.now = 0.0
        """The daemon's time when the rules were fetched (what expired is told by it)."""
        self.agent: str | None = None
        """Only rules that apply to this agent kind (None: all)."""
        self.confirming: Rule | None = None
        """The rule a `y` deletes."""

    @property
    def deck(self) -> DeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="rules-title")
        yield DataTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="rules-confirm")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.run_worker(self.load(), exclusive=True, group="rules", exit_on_error=False)

    async def load(self) -> None:
        """Fetch the rules and draw them."""
        client = self.deck.client
        if client is None:
            return
        try:
            self.rules, self.now = await client.list_rules()
        except TaskdeckError as exc:
            self.notify(f"rules not fetched: {exc}", severity="error")
            return
        self.draw()

    @property
    def shown(self) -> list[Rule]:
        """The rules the filter lets through (a rule for every agent applies to each)."""
        return [r for r in self.rules if self.agent is None or r.agent in (None, self.agent)]

    def draw(self) -> None:
        """Fill the table from `rules`, keeping the cursor's row where it can."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for rule in self.shown:
            table.add_row(*self._cells(rule), key=str(rule.id))
        if self.shown:
            table.move_cursor(row=min(row, len(self.shown) - 1))
        agent = self.agent or "any"
        count = len(self.shown)
        noun = "rule" if count == 1 else "rules"
        self.query_one("#rules-title", Static).update(
            f"Approval rules: {count} {noun} shown (agent: {agent}) · deny beats ask beats "
            "allow · x deletes, f filters by agent, esc goes back")
        self.refresh_bindings()

    def _cells(self, rule: Rule) -> tuple[str, ...]:
        if rule.expires_at is None:
            expires = "never"
        elif rule.expired(self.now):
            expires = "expired"
        else:
            expires = f"in {format_elapsed(rule.expires_at - self.now)}"
        used = "never" if rule.last_used is None else \
            f"{format_elapsed(self.now - rule.last_used)} ago"
        return (str(rule.id), rule.effect.value, shown_line(rule.pattern), rule.agent or "any",
                shown_line(rule.scope), str(rule.hits), used, expires, shown_line(rule.added_by))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm":
            return self.confirming is not None
        if action == "delete":
            return self.confirming is None and bool(self.shown)
        return True

    def action_move(self, rows: int) -> None:
        """j / k, as in the tree."""
        table = self.query_one(DataTable)
        table.move_cursor(row=max(0, table.cursor_row + rows))

    def action_cycle_agent(self) -> None:
        """Step the agent filter through any and each agent kind a rule names."""
        kinds = [None, *sorted({r.agent for r in self.rules if r.agent})]
        self.agent = kinds[(kinds.index(self.agent) + 1) % len(kinds)] \
            if self.agent in kinds else None
        self.draw()

    def action_delete(self) -> None:
        """Ask before deleting the highlighted rule."""
        shown = self.shown
        table = self.query_one(DataTable)
        if not shown:
            return
        rule = shown[min(table.cursor_row, len(shown) - 1)]
        self.confirming = rule
        confirm = self.query_one("#rules-confirm", Static)
        confirm.update(f"Delete rule {rule.id}: {rule.effect.value} "
                       f"{shown_line(rule.pattern)} ({shown_line(rule.scope)})?  "
                       "y deletes · n keeps it")
        confirm.display = True
        self.refresh_bindings()

    async def action_confirm(self, yes: bool) -> None:
        """`y` deletes the rule the confirmation names, `n` keeps it."""
        rule, self.confirming = self.confirming, None
        self.query_one("#rules-confirm", Static).display = False
        self.refresh_bindings()
        client = self.deck.client
        if not yes or rule is None or client is None:
            return
        try:
            await client.remove_rule(rule.id)
        except TaskdeckError as exc:
            self.notify(f"rule {rule.id} not deleted: {exc}", severity="error")
        else:
            self.notify(f"deleted rule {rule.id}: {rule.effect.value} {rule.pattern}")
        await self.load()

    def action_refresh(self) -> None:
        self.run_worker(self.load(), exclusive=True, group="rules", exit_on_error=False)

    def action_close(self) -> None:
        if self.confirming is not None:
            self.run_worker(self.action_confirm(False))
            return
        self.dismiss()
