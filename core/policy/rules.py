"""Approval rules and the book that decides an action by them: deny beats ask beats allow.

The book knows nothing of the registry: it is given the action, the ids of the asking task
and its ancestors (for subtree rules) and the time (for expiry), and says which rules decide.

Precedence, as Claude Code's: a deny that matches any reading of any part of the action
wins over everything; then an ask; an allow decides only when every part of a shell command
is allowed and the command was read for sure. So no rule, however broad, loosens what a
deny forbids, and adding a deny can only make a decision stricter.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import msgspec

from core.errors import BadRequest
from core.model import Action
from core.policy.data import Effect, Rule, Ruling
from core.policy.pattern import SHELL, Pattern, index_words
from core.policy.shell import read


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
