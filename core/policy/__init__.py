"""Approval rules: patterns in Claude Code's syntax, shell commands read part by part, and the
book that decides an action by its rules (deny beats ask beats allow). No registry here."""

from core.policy.pattern import Pattern
from core.policy.rules import Effect, Rule, Rulebook, Ruling, check_pattern

__all__ = ["Effect", "Pattern", "Rule", "Rulebook", "Ruling", "check_pattern"]
