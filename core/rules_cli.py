"""`taskdeck rules`: list, add, remove and test approval rules on the running daemon.

`rules test` tells which rule would decide an action and why, without asking anything:
its exit code is 0 when a rule allows it, 1 when one denies it, 3 when a person would be
asked, 2 on an error (as `taskdeck ask`: 0 go, 1 no).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import msgspec

from core.errors import BadRequest
from core.model import Action
from core.policy import Effect, Rule
from core.policy.pattern import FAMILIES, SHELL_NAMES
from core.text import local_time, printable

EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
EXIT_ASKS = 3
"""`rules test`: no rule decides; a person would be asked."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """An argparse type: `90`, `90s`, `30m`, `12h`, `7d`, `2w` as seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if found is None or float(found[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a positive number with s, m, h, d or w, e.g. 30m)")
    return float(found[1]) * _UNITS[found[2] or "s"]


def run(args: argparse.Namespace) -> int:
    """Carry out one `taskdeck rules` subcommand."""
    from core.client import SyncClient

    if args.rules_command is None:
        print("taskdeck rules: say ls, add, rm or test (see taskdeck rules --help)",
              file=sys.stderr)
        return EXIT_ERROR
    with SyncClient(args.runtime_dir, client_name="cli") as client:
        match args.rules_command:
            case "ls":
                rules, now = client.list_rules()
                if args.agent:
                    rules = [r for r in rules if r.agent in (None, args.agent)]
                _print_rules(rules, now, as_json=args.json)
                return 0
            case "add":
                rule = client.add_rule(
                    args.effect, args.pattern, agent=args.agent, session=args.session,
                    task_id=args.task, expires=args.expires, everything=args.everything,
                )
                print(f"added {printable(rule.describe())}{_expiry(rule)}")
                return 0
            case "rm":
                rule = client.remove_rule(args.rule_id)
                print(f"removed {printable(rule.describe())}")
                return 0
            case "test":
                action = parse_action(args.action, agent=args.agent, session=args.session,
                                      cwd=args.cwd)
                ruling = client.test_rules(action, task_id=args.task)
                return _print_ruling(ruling.effect, ruling.reason)
    raise BadRequest(f"unknown rules command {args.rules_command!r}")


def parse_action(text: str, *, agent: str, session: str | None, cwd: str | None) -> Action:
    """An action written as a rule would name it: `Bash(npm test)`, `Edit(src/a.py)`,
    `WebFetch(https://example.com)`, or a bare tool name.

    Raises:
        BadRequest: not in that form.
    """
    tool, paren, rest = text.strip().partition("(")
    tool = tool.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-.]*", tool) or (paren and not rest.endswith(")")):
        raise BadRequest(f"write the action as Tool(input), e.g. 'Bash(npm test)', "
                         f"'Edit(src/app.py)' or 'WebFetch(https://example.com)', not {text!r}")
    value = rest[:-1] if paren else ""
    tool_input: dict[str, object] = {}
    if tool.lower() in SHELL_NAMES:
        tool_input["command"] = value
    elif tool in FAMILIES:
        tool_input["path" if tool in ("Grep", "Glob", "LS") else "file_path"] = value
    elif tool == "WebFetch":
        tool_input["url"] = value
    elif value:
        raise BadRequest(f"{tool} takes no input here (only Bash, {', '.join(sorted(FAMILIES))} "
                         "and WebFetch do); write it alone")
    return Action(agent=agent, tool=tool, input=tool_input, session=session, cwd=cwd)


def _print_rules(rules: list[Rule], now: float, *, as_json: bool) -> None:
    if as_json:
        rows = []
        for rule in rules:
            row = msgspec.to_builtins(rule)
            row["scope"] = rule.scope
            row["expired"] = rule.expired(now)
            rows.append(row)
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rules:
        print("no rules")
        return
    print(f"{'ID':>4}  {'EFFECT':<6} {'AGENT':<8} {'HITS':>5}  {'LAST USED':<19}  PATTERN  (SCOPE)")
    for rule in rules:
        state = " [expired]" if rule.expired(now) else _expiry(rule)
        print(f"{rule.id:>4}  {rule.effect.value:<6} {rule.agent or 'any':<8} {rule.hits:>5}  "
              f"{local_time(rule.last_used) or 'never':<19}  {printable(rule.pattern)}  "
              f"({printable(rule.scope)}){state}  added by {printable(rule.added_by)}")


def _print_ruling(effect: Effect | None, reason: str) -> int:
    if effect is Effect.ALLOW:
        print(f"allow: {printable(reason)}")
        return EXIT_ALLOWED
    if effect is Effect.DENY:
        print(f"deny: {printable(reason)}")
        return EXIT_DENIED
    print(f"ask a person: {printable(reason)}")
    return EXIT_ASKS


def _expiry(rule: Rule) -> str:
    return f", until {local_time(rule.expires_at)}" if rule.expires_at is not None else ""

