"""The dashboard's modes as a plain state machine: which box is open, and what a key may do.

No Textual here. A key's action comes in with the facts it needs (the highlighted
task, how many of its question's lines were never on screen, how many tasks an abort
would stop) and intents come out, which the app carries out: send an answer, open or
close a box, ask before an abort, or say in a notice why nothing happens. Every rule a
key obeys lives here, so each is a unit test (tests/tui/test_modes.py).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from core.errors import BadRequest
from core.model import EDIT, MAX_TEXT, Action, Task, Verdict
from core.policy import Pattern
from tui.view import approval_choice, denial_choice, is_asking, verdict_of


class Mode(str, enum.Enum):
    """Which box has the keys."""

    NORMAL = "normal"
    """None: the tree and the app's keys have them."""
    REPLY = "reply"
    """The answer box, for a free-text reply."""
    REASON = "reason"
    """The answer box, for a denial's optional reason."""
    EDIT = "edit"
    """The answer box, holding the question's action input to edit, as JSON."""
    CONFIRM = "confirm"
    """An abort waits for y or n."""
    FILTER = "filter"
    """The filter box."""
    REMEMBER = "remember"
    """The answer box as a rule editor (`A`, `D`): a pattern, a scope and an expiry."""

    @property
    def is_answering(self) -> bool:
        """True while the answer box is open (its question stays in the bar until it closes)."""
        return self in (Mode.REPLY, Mode.REASON, Mode.EDIT, Mode.REMEMBER)


# ------------------------------------------------------------------ intents


@dataclass(frozen=True, slots=True)
class Say:
    """Show a notice: why a key did nothing, or what it would have risked."""

    text: str
    severity: str = "information"


@dataclass(frozen=True, slots=True)
class Send:
    """Answer a prompt through the daemon."""

    task_id: int
    prompt_id: int
    text: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OpenAnswer:
    """Show the task's question, the answer box open and focused, labelled by what it sends."""

    task_id: int
    label: str
    text: str = ""
    """What the box holds when it opens (the input to edit), cursor at its end."""


@dataclass(frozen=True, slots=True)
class CloseAnswer:
    """Hide the answer box; the tree has the keys again."""


@dataclass(frozen=True, slots=True)
class Expand:
    """Show the next lines of the highlighted question."""


@dataclass(frozen=True, slots=True)
class AskAbort:
    """Show what an abort would stop, and wait for y or n."""

    task_id: int
    count: int
    only: bool


@dataclass(frozen=True, slots=True)
class CloseConfirm:
    """Hide the abort confirmation."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Abort the task (and its sub-tasks unless `only`) through the daemon."""

    task_id: int
    only: bool


@dataclass(frozen=True, slots=True)
class OpenFilter:
    """Show the filter box, focused, holding the filter in force."""


@dataclass(frozen=True, slots=True)
class ApplyFilter:
    """Show only the rows that match this text (and their ancestors)."""

    text: str


@dataclass(frozen=True, slots=True)
class LeaveFilter:
    """Give the tree the keys again, keeping the filter in force or clearing it."""

    keep: bool


@dataclass(frozen=True, slots=True)
class OpenRemember:
    """Show the task's question with the answer box as a rule editor, holding `pattern`."""

    task_id: int
    label: str
    pattern: str
    options: str
    """The scope and expiry picked, and the keys that change them."""


@dataclass(frozen=True, slots=True)
class ShowRemember:
    """The rule editor's scope or expiry changed: show the new ones."""

    options: str


@dataclass(frozen=True, slots=True)
class Remember:
    """Save a rule through the daemon, then answer the question it came from."""

    task_id: int
    prompt_id: int
    effect: str
    pattern: str
    scope: dict[str, object]
    """`session=...`, `task_id=...`, or nothing (everywhere)."""
    expires: float | None
    answer: str


Intent = (Say | Send | OpenAnswer | CloseAnswer | Expand | AskAbort | CloseConfirm | Abort
          | OpenFilter | ApplyFilter | LeaveFilter | OpenRemember | ShowRemember | Remember)
Intents = tuple[Intent, ...]
"""What a key does, in order; empty when it does nothing at all."""


# ------------------------------------------------------------------ the machine

ALWAYS = frozenset({"quit", "help", "command_palette", "escape"})
"""Actions live in every mode and over every screen (each screen handles its own first)."""

TREE_ACTIONS = frozenset({"toggle_fold", "fold", "unfold"})
"""The tree's own keys, carried out by the app: live whenever the tree has the focus."""

EXPIRIES: tuple[tuple[str, float | None], ...] = (
    ("never", None), ("in 1 hour", 3600.0), ("in 8 hours", 8 * 3600.0),
    ("in 1 day", 86400.0), ("in 7 days", 7 * 86400.0),
)
"""The rule editor's expiries, in the order ctrl+e steps through them."""


@dataclass
class Draft:
    """The rule being edited: its effect, the scopes it may take, and the picks."""

    effect: str
    scopes: list[tuple[str, dict[str, object]]]
    scope: int = 0
    expiry: int = 0

    def options(self) -> str:
        """One line: the picks and the keys that change them."""
        verb = "approves" if self.effect == "allow" else "denies"
        return (f"for {self.scopes[self.scope][0]} (tab) · expires "
                f"{EXPIRIES[self.expiry][0]} (ctrl+e) · ⏎ saves the rule and {verb} · "
                "esc goes back")


@dataclass
class Modes:
    """The open mode and what it is about; each method is one key's rule."""

    mode: Mode = Mode.NORMAL
    answering: tuple[int, int] | None = None
    """(task id, prompt id) the open answer box sends to."""
    choices: list[str] = field(default_factory=list)
    """The choices of the question the open box answers (its last one denies)."""
    confirming: tuple[int, bool] | None = None
    """(task id, only) of the abort waiting for y / n."""
    draft: Draft | None = None
    """The rule the open editor saves (`A`, `D`)."""

    def allows(self, action: str, task: Task | None, *, covered: bool = False) -> bool:
        """Whether a key's action applies now (keys that do not are left off the footer).

        Args:
            action: The action's name, without parameters.
            task: The highlighted task.
            covered: Help or the command palette is open over the main screen.
        """
        if action in ALWAYS:
            return True
        if covered:
            return False  # its keys are its own
        if action in TREE_ACTIONS:
            return True
        if action in ("confirm_yes", "confirm_no"):
            return self.mode is Mode.CONFIRM
        if self.mode is not Mode.NORMAL:
            return False
        if action == "abort":
            return task is not None and not task.status.is_ended
        # Answer keys stay live on every row: on one that is not asking they say so,
        # instead of doing nothing in silence.
        return True

    # ---------------------------------------------------------------- answers

    def choose(
        self, task: Task | None, number: int, *, unread: int = 0, action: Action | None = None
    ) -> Intents:
        """A numbered choice (`a` is 1), sent at once; `EDIT` first opens the action's input.

        Args:
            unread: Lines of the task's question never on screen; an approval waits for them.
            action: The action the question asks leave for, if any: its input is what
                the `EDIT` choice opens for editing.
        """
        said = _not_asking(task)
        if said:
            return said
        assert task is not None and task.blocked_on is not None
        choices = task.blocked_on.choices
        if not 1 <= number <= len(choices):
            return (Say(f"#{task.id} offers {len(choices)} choices: keys 1-{len(choices)}",
                        "warning"),)
        choice = choices[number - 1]
        if unread and verdict_of(task, choice) is Verdict.APPROVED:
            return _unread(task, unread)
        if choice == EDIT and action is not None:
            return self._open_edit(task, action)
        return (Send(task.id, task.blocked_on.prompt_id, choice),)

    def _open_edit(self, task: Task, action: Action) -> Intents:
        """Open the answer box on the action's input as one line of JSON, to edit and send."""
        assert task.blocked_on is not None
        text = json.dumps(action.input, ensure_ascii=False)
        if len(text) > MAX_TEXT:
            return (Say(f"#{task.id}'s {action.tool} input is {len(text)} characters, too long "
                        f"to edit here (an answer's reason holds {MAX_TEXT})", "warning"),)
        self.mode = Mode.EDIT
        self.answering = (task.id, task.blocked_on.prompt_id)
        self.choices = list(task.blocked_on.choices)
        return (OpenAnswer(task.id, f"edit {action.tool} input (JSON)", text),)

    def expand(self, task: Task | None) -> Intents:
        """Show more of a long question."""
        return _not_asking(task) or (Expand(),)

    def open_answer(self, task: Task | None, mode: Mode) -> Intents:
        """Open the answer box for a reply (`r`) or a denial's reason (`d`). `d` sends the
        choice that refuses (`denial_choice`), never an approval: it need not wait for
        unread lines as `a` does."""
        said = _not_asking(task)
        if said:
            return said
        assert task is not None and task.blocked_on is not None and mode.is_answering
        if mode is Mode.REASON and denial_choice(task.blocked_on.choices) is None:
            offered = " / ".join(task.blocked_on.choices)
            return (Say(f"#{task.id} offers no denial ({offered}): a, or 1-"
                        f"{len(task.blocked_on.choices)}", "warning"),)
        self.mode = mode
        self.answering = (task.id, task.blocked_on.prompt_id)
        self.choices = list(task.blocked_on.choices)
        label = "deny reason" if mode is Mode.REASON else "reply"
        return (OpenAnswer(task.id, label),)

    def submit_answer(self, typed: str) -> Intents:
        """Enter in the answer box: the denial with its reason, or the reply (not an empty one)."""
        if self.answering is None:
            return ()
        task_id, prompt_id = self.answering
        text = typed.strip()
        if self.mode is Mode.REMEMBER:
            return self._submit_rule(typed)
        if self.mode is Mode.REASON:
            denial = denial_choice(self.choices) or "deny"
            sent = Send(task_id, prompt_id, denial, reason=text or None)
        elif self.mode is Mode.EDIT:
            edited = _edited(text)
            if isinstance(edited, Say):
                return (edited,)
            sent = Send(task_id, prompt_id, EDIT, reason=edited)
        elif text in self.choices:  # a reply is never a choice: it would approve or deny
            return (Say(f"“{text}” is one of the choices: Esc, then a, d or 1-9 picks it",
                        "warning"),)
        elif text:
            sent = Send(task_id, prompt_id, text)
        else:
            return (Say("type a reply first (Esc cancels)", "warning"),)
        return (sent, *self.cancel_answer())

    def cancel_answer(self) -> Intents:
        """Esc in the answer box: close it, sending nothing."""
        self.mode = Mode.NORMAL
        self.answering = None
        self.choices = []
        self.draft = None
        return (CloseAnswer(),)

    # ---------------------------------------------------------------- rules

    def open_remember(self, task: Task | None, effect: str, action: Action | None,
                      proposal: str, *, unread: int = 0) -> Intents:
        """`A` (allow) or `D` (deny) and remember: the editor, holding the proposed rule.

        Args:
            action: The action the task's question asks leave for (None: a plain question,
                which no rule decides).
            proposal: The pattern to start from.
            unread: Lines of the question never on screen; an allow waits for them, as `a`.
        """
        said = _not_asking(task)
        if said:
            return said
        assert task is not None and task.blocked_on is not None
        if action is None:
            return (Say(f"#{task.id} asks a plain question: rules decide only an agent's "
                        "actions; a or d answers it once", "warning"),)
        if effect == "allow" and unread:
            return _unread(task, unread)
        scopes: list[tuple[str, dict[str, object]]] = []
        if action.session:
            scopes.append((f"this session ({action.session})", {"session": action.session}))
        scopes.append((f"#{task.id} and its sub-tasks", {"task_id": task.id}))
        scopes.append(("every agent, everywhere", {}))
        self.mode = Mode.REMEMBER
        self.answering = (task.id, task.blocked_on.prompt_id)
        self.choices = list(task.blocked_on.choices)
        self.draft = Draft(effect, scopes)
        return (OpenRemember(task.id, f"{effect} rule", proposal, self.draft.options()),)

    def cycle_scope(self) -> Intents:
        """Tab in the rule editor: the next scope."""
        if self.draft is None:
            return ()
        self.draft.scope = (self.draft.scope + 1) % len(self.draft.scopes)
        return (ShowRemember(self.draft.options()),)

    def cycle_expiry(self) -> Intents:
        """Ctrl+E in the rule editor: the next expiry."""
        if self.draft is None:
            return ()
        self.draft.expiry = (self.draft.expiry + 1) % len(EXPIRIES)
        return (ShowRemember(self.draft.options()),)

    def _submit_rule(self, typed: str) -> Intents:
        """Enter in the rule editor: save the rule and answer, unless the rule is malformed
        or matches every use of its tool (the editor stays open to fix it)."""
        draft, answering = self.draft, self.answering
        if draft is None or answering is None:
            return ()
        try:
            pattern = Pattern.parse(typed)
        except BadRequest as exc:
            return (Say(f"{exc} (fix it, or Esc goes back)", "warning"),)
        if pattern.everything:
            return (Say(f"{pattern.text} matches every use of {pattern.tool}: narrow it "
                        "(`taskdeck rules add --everything` adds such a rule)", "warning"),)
        if draft.effect == "allow":
            answer = approval_choice(self.choices)
            if answer is None:
                return (Say("this question offers no choice that approves for a rule to give: "
                            "Esc, then d or 1-9 answers it", "warning"),)
        else:
            answer = denial_choice(self.choices)
            if answer is None:
                return (Say("this question offers no plain deny for a rule to give: Esc, then d "
                            "answers it", "warning"),)
        remember = Remember(answering[0], answering[1], draft.effect, pattern.text,
                            draft.scopes[draft.scope][1], EXPIRIES[draft.expiry][1], answer)
        return (remember, *self.cancel_answer())

    # ---------------------------------------------------------------- aborts

    def abort(self, task: Task | None, count: int, *, only: bool = False) -> Intents:
        """`x` (or `X`, `only`): ask before stopping `count` live tasks.

        Asked again over an open confirmation (from the palette), it names the task now highlighted.
        """
        if task is None or self.mode not in (Mode.NORMAL, Mode.CONFIRM):
            return ()
        if count == 0:
            return (Say(f"#{task.id} and its sub-tasks have all ended: nothing to abort"),)
        self.mode = Mode.CONFIRM
        self.confirming = (task.id, only)
        return (AskAbort(task.id, count, only),)

    def confirm(self, yes: bool) -> Intents:
        """`y` aborts what the confirmation named, `n` keeps it."""
        if self.confirming is None:
            return ()
        task_id, only = self.confirming
        closed = self._close_confirm()
        return (*closed, Abort(task_id, only)) if yes else closed

    def highlighted(self, task_id: int | None) -> Intents:
        """The cursor moved: a confirmation that named another task is dropped."""
        if self.confirming is not None and task_id != self.confirming[0]:
            return self._close_confirm()
        return ()

    def _close_confirm(self) -> Intents:
        self.mode = Mode.NORMAL
        self.confirming = None
        return (CloseConfirm(),)

    # ---------------------------------------------------------------- the filter

    def open_filter(self) -> Intents:
        """`/`: open the filter box (only from the tree)."""
        if self.mode is not Mode.NORMAL:
            return ()
        self.mode = Mode.FILTER
        return (OpenFilter(),)

    def filter_typed(self, text: str) -> Intents:
        """The filter box changed: filter as it is typed (not a change that lands after Enter)."""
        return (ApplyFilter(text),) if self.mode is Mode.FILTER else ()

    def submit_filter(self, typed: str) -> Intents:
        """Enter in the filter box: keep what it holds."""
        self.mode = Mode.NORMAL
        return (ApplyFilter(typed), LeaveFilter(keep=True))

    def cancel_filter(self) -> Intents:
        """Esc in the filter box: clear the filter."""
        self.mode = Mode.NORMAL
        return (LeaveFilter(keep=False),)

    # ---------------------------------------------------------------- escape

    def escape(self, *, filtered: bool) -> Intents:
        """Esc outside a box: drop the confirmation, else the answer box, else a filter in force."""
        if self.mode is Mode.CONFIRM:
            return self._close_confirm()
        if self.mode.is_answering:
            return self.cancel_answer()  # the focus left the box (a click): Esc still closes it
        if filtered:
            return self.cancel_filter()
        return ()


def _edited(typed: str) -> str | Say:
    """The edited input as the reason that carries it (compact JSON), or why it cannot be sent."""
    try:
        edited = json.loads(typed)
    except ValueError as exc:
        return Say(f"not JSON ({exc}): fix it, or Esc to cancel", "warning")
    if not isinstance(edited, dict):
        return Say("the input must be a JSON object, {...} (Esc cancels)", "warning")
    text = json.dumps(edited, ensure_ascii=False)
    if len(text) > MAX_TEXT:
        return Say(f"the edited input is {len(text)} characters, over {MAX_TEXT}", "warning")
    return text


def _not_asking(task: Task | None) -> Intents:
    """Why an answer key does nothing on this row, or () when the task asks a question."""
    if task is None:
        return (Say("no task highlighted"),)
    if not is_asking(task) or task.blocked_on is None:
        return (Say(f"#{task.id} is not asking; b jumps to the next question", "warning"),)
    return ()


def _unread(task: Task, unread: int) -> Intents:
    """Why an approval waits: lines of the question were never on screen."""
    return (Say(f"#{task.id}'s question has {unread} more lines you have not seen: "
                "e shows them; approve once you have read them", "warning"),)
