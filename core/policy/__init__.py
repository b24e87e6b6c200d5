"""Approval rules: patterns in Claude Code's syntax, shell commands read part by part, and the
book that decides an action by its rules (deny beats ask beats allow). No registry here.

    data      a rule, its effect and a ruling: what the wire and the journal carry
    shell     a shell command read part by part (tree-sitter)
    pattern   a rule's pattern and whether it matches an action
    rules     the book that decides an action by its rules
"""

from typing import TYPE_CHECKING

from core.lazy import exports

if TYPE_CHECKING:
    from core.policy.data import Effect, Rule, Ruling
    from core.policy.pattern import Pattern
    from core.policy.rules import Rulebook, check_pattern

_HOMES = {
    "Effect": "data", "Rule": "data", "Ruling": "data",
    "Pattern": "pattern", "Rulebook": "rules", "check_pattern": "rules",
}
"""Where each name lives, imported on first use: the wire's messages name `Rule` and
`Ruling`, and a hook (started for every tool call) must not load the shell parser."""


__getattr__ = exports(__name__, _HOMES)

__all__ = ["Effect", "Pattern", "Rule", "Rulebook", "Ruling", "check_pattern"]
