"""Approval rules and the book that decides an action by them: deny beats ask beats allow.

The book knows nothing of the registry: it is given the action, the ids of the asking task
and its ancestors (for subtree rules) and the time (for expiry), and says which rules decide.

Precedence, as Claude Code's: a deny that matches any reading of any part of the action
wins over everything; then an ask; an allow decides only when every part of a shell command
is allowed and the command was read for sure. So no rule, however broad, loosens what a
deny forbids, and adding a deny can only make a decision stricter.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from typing import Annotated

import msgspec
from msgspec import Meta

from core.errors import BadRequest
from core.model import MAX_NAME, MAX_TEXT, Action
from core.policy.pattern import SHELL, Pattern, index_words
from core.policy.shell import read


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


class _Held(msgspec.Struct, gc=False):
    rule: Rule
    pattern: Pattern


class Rulebook:
    """The rules in force, indexed by tool and, for shell rules, by their command word.

    With 1,000 rules the index leaves a handful of candidates per action, so deciding costs
    about the same as with ten (bench/policy.py).
    """

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}
        self._by_key: dict[str, list[_Held]] = {}
        """Tool name (or `SHELL`) -> its rules that have no `Pattern.first`."""
        self._by_word: dict[tuple[str, str], list[_Held]] = {}
        """(tool name or `SHELL`, `Pattern.first`) -> its rules: `Bash(npm test *)` under
        (SHELL, "npm"), `Edit(src/**)` under ("Edit", "src"), a domain under its name."""
        self._every: dict[str, list[_Held]] = {}
        """Tool name -> all its rules, for the rare action the index cannot narrow."""
        self._globs: list[_Held] = []
        """Rules whose tool name is a glob (`mcp__x__*`), tried on every action."""
        self.next_id = 1

    def __len__(self) -> int:
        return len(self._held)

    def rules(self) -> list[Rule]:
        """Every rule held, by id."""
        return [self._held[i].rule for i in sorted(self._held)]

    def get(self, rule_id: int) -> Rule | None:
        """The rule of that id, if held."""
        held = self._held.get(rule_id)
        return held.rule if held is not None else None

    def add(self, rule: Rule) -> None:
        """Hold a rule (replacing one of the same id); its pattern must parse."""
        self.remove(rule.id)
        held = _Held(rule, Pattern.parse(rule.pattern))
        self._held[rule.id] = held
        self.next_id = max(self.next_id, rule.id + 1)
        for bucket in self._buckets(held.pattern):
            bucket.append(held)

    def update(self, rule: Rule) -> None:
        """Replace a held rule's record (hits, last use) without re-reading its pattern."""
        held = self._held.get(rule.id)
        if held is not None:
            held.rule = rule

    def remove(self, rule_id: int) -> Rule | None:
        """Drop a rule; returns it, or None if it was not held."""
        held = self._held.pop(rule_id, None)
        if held is None:
            return None
        for bucket in self._buckets(held.pattern):
            bucket.remove(held)
        return held.rule

    def _buckets(self, pattern: Pattern) -> Iterable[list[_Held]]:
        if not pattern.keys:
            yield self._globs
            return
        for key in pattern.keys:
            yield self._every.setdefault(key, [])
            if pattern.first is not None:
                yield self._by_word.setdefault((key, pattern.first), [])
            else:
                yield self._by_key.setdefault(key, [])

    def decide(self, action: Action, *, lineage: Collection[int] = (), now: float) -> Ruling:
        """Which rules decide `action`, asked by the task whose id and ancestors' ids are
        `lineage`, at time `now`; expired rules and rules of other scopes are passed over."""
        command = action.command
        if command is not None:
            return self._decide_shell(action, command, lineage, now)
        words, anywhere = index_words(action)
        tool = action.tool
        found = (self._every.get(tool, ()) if anywhere else
                 [*self._by_key.get(tool, ()),
                  *(h for word in words for h in self._by_word.get((tool, word), ()))])
        candidates = [h for h in (*found, *self._globs) if _applies(h.rule, action, lineage, now)]
        for effect in (Effect.DENY, Effect.ASK):
            for held in candidates:
                if held.rule.effect is effect and held.pattern.matches(action, loose=True):
                    return _ruling(effect, [held], action.summary)
        for held in candidates:
            if held.rule.effect is Effect.ALLOW and held.pattern.matches(action, loose=False):
                return _ruling(Effect.ALLOW, [held], action.summary)
        return Ruling(effect=None, reason="no rule matches")

    def _decide_shell(self, action: Action, command: str, lineage: Collection[int],
                      now: float) -> Ruling:
        reading = read(command)
        general = [h for h in (*self._by_key.get(SHELL, ()), *self._globs)
                   if _applies(h.rule, action, lineage, now) and h.pattern.covers(action.tool)]
        per_part: list[list[_Held]] = []
        for part in reading.parts:
            words = {part.exact.split(" ", 1)[0], part.loose.split(" ", 1)[0]}
            found = [h for word in words for h in self._by_word.get((SHELL, word), ())
                     if _applies(h.rule, action, lineage, now)]
            per_part.append(found + general)
        for effect in (Effect.DENY, Effect.ASK):
            for part, candidates in zip(reading.parts, per_part, strict=True):
                for held in candidates:
                    if held.rule.effect is effect and held.pattern.matches_part(
                            part.exact, part.loose, loose=True):
                        return _ruling(effect, [held], part.loose or part.exact)
        if not reading.sure:
            return Ruling(effect=None, reason=f"no rule can allow it: {reading.why}")
        deciders: list[_Held] = []
        for part, candidates in zip(reading.parts, per_part, strict=True):
            allow = next((h for h in candidates if h.rule.effect is Effect.ALLOW
                          and h.pattern.matches_part(part.exact, part.loose, loose=False)), None)
            if allow is None:
                if deciders or len(reading.parts) > 1:
                    return Ruling(effect=None,
                                  reason=f"no rule allows {part.exact!r}, one part of it")
                return Ruling(effect=None, reason="no rule matches")
            if allow not in deciders:
                deciders.append(allow)
        return _ruling(Effect.ALLOW, deciders, command)


def _applies(rule: Rule, action: Action, lineage: Collection[int], now: float) -> bool:
    """Whether a rule's agent, scope and expiry let it speak for this action at all."""
    if rule.agent is not None and rule.agent != action.agent:
        return False
    if rule.session is not None and rule.session != action.session:
        return False
    if rule.task_id is not None and rule.task_id not in lineage:
        return False
    return not rule.expired(now)


def _ruling(effect: Effect, deciders: list[_Held], what: str) -> Ruling:
    verb = {Effect.ALLOW: "allows", Effect.DENY: "denies", Effect.ASK: "asks a person about"}
    named = "; ".join(f"rule {h.rule.id} ({h.rule.pattern}, {h.rule.scope})" for h in deciders)
    return Ruling(effect=effect, rules=[h.rule.id for h in deciders],
                  reason=f"{named} {verb[effect]} {what}")


def check_pattern(text: str, *, everything: bool) -> Pattern:
    """Read a pattern a person gives for a new rule.

    Raises:
        BadRequest: malformed, or it matches everything and `everything` was not given.
    """
    pattern = Pattern.parse(text)
    if pattern.everything and not everything:
        raise BadRequest(
            f"{pattern.text} matches every use of {pattern.tool}: say --everything if that "
            "is meant"
        )
    return pattern


__all__ = ["Effect", "Pattern", "Rule", "Rulebook", "Ruling", "check_pattern", "read"]
