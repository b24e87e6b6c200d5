"""Rules as data: what a rule is and what the rules say about an action, without the
matching. The wire and the journal carry these, so a client that only sends and reads
them (a hook, started for every tool call) never loads the shell parser.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from core.model import MAX_NAME, MAX_TEXT


class Effect(str, enum.Enum):
    """What a rule does to an action it matches."""

    ALLOW = "allow"
    """Approve without asking."""
    DENY = "deny"
    """Deny without asking."""
    ASK = "ask"
    """Ask a person even when an allow rule matches."""


class Rule(msgspec.Struct, kw_only=True, gc=False):
    """One approval rule, as listed, sent on the wire and kept in the journal."""

    id: int
    effect: Effect
    pattern: Annotated[str, Meta(max_length=MAX_TEXT)]
    """In Claude Code's syntax, e.g. `Bash(npm test *)` (see `core.policy.pattern`)."""
    agent: Annotated[str, Meta(max_length=MAX_NAME)] | None = None
    """The agent kind it applies to ("claude", "codex", ...); None: every agent."""
    task_id: int | None = None
    """Scope: only actions asked by this task or a task below it."""
    session: Annotated[str, Meta(max_length=MAX_NAME)] | None = None
    """Scope: only actions of this agent session (`Action.session`)."""
    expires_at: float | None = None
    """After this time the rule decides nothing (it stays listed, as expired)."""
    added_by: str = ""
    added_at: float = 0.0
    hits: int = 0
    """Actions it decided (or, for an ask rule, sent to a person)."""
    last_used: float | None = None
    removed_at: float | None = None
    """Set when the rule was removed (kept so the journal tells its whole story)."""

    @property
    def scope(self) -> str:
        """The scope in words: "session S", "task 7 and below" or "everywhere"."""
        if self.session is not None:
            return f"session {self.session}"
        if self.task_id is not None:
            return f"task {self.task_id} and below"
        return "everywhere"

    def expired(self, now: float) -> bool:
        """True once its expiry has passed."""
        return self.expires_at is not None and now >= self.expires_at

    def describe(self) -> str:
        """One line: "rule 3: allow Bash(npm test *) for claude, session S, until ..."."""
        who = f" for {self.agent}" if self.agent else ""
        return f"rule {self.id}: {self.effect.value} {self.pattern}{who}, {self.scope}"


class Ruling(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules say about one action."""

    effect: Effect | None
    """None: no rule speaks for it; a person is asked."""
    rules: list[int] = msgspec.field(default_factory=list)
    """The rules that decide (several allows may share a compound command)."""
    reason: str = ""
    """Why, in a person's words."""

    @property
    def decides(self) -> bool:
        """True when the rules close the question without a person (allow or deny)."""
        return self.effect in (Effect.ALLOW, Effect.DENY)
