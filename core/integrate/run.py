"""`taskdeck integrate claude|codex`: show or make the change, and say what happened."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TextIO

from core.integrate import plans
from core.integrate.command import HookOptions, is_ours
from core.integrate.files import BadFile, Change, load_json_object, read_text, write
from core.text import printable

AGENT_NAMES = {"claude": "Claude Code", "codex": "Codex"}


class PartlyWritten(BadFile):
    """A later file could not be written after an earlier one was (only Codex has two)."""


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command; a file we will not touch is one line on stderr and exit 2."""
    out, err = out or sys.stdout, err or sys.stderr
    wrong = _misplaced(args)
    if wrong:
        print(f"taskdeck integrate: {wrong} is not an option for {args.agent}", file=err)
        return 2
    options = None if args.remove else HookOptions(
        gates=tuple(dict.fromkeys(args.gate or ())), timeout=args.timeout, idle=args.idle,
        runtime_dir=args.runtime_dir)
    try:
        if args.agent == "claude":
            changes = plans.claude(plans.claude_settings(args.settings, args.project, args.user),
                                   options)
        else:
            changes = plans.codex(plans.codex_home(args.codex_home), options)
        if args.print:
            return _show(changes, out)
        _apply(changes, args, out)
        if args.remove:
            return 0
        if args.agent == "codex":
            return _codex_step_left(plans.codex_home(args.codex_home), args.verify, out, err)
        return _claude_step_left(changes[0], err)
    except PartlyWritten as exc:
        print(f"taskdeck: {printable(str(exc))}", file=err)
        return 2
    except BadFile as exc:
        print(f"taskdeck: {printable(str(exc))}: nothing changed", file=err)
        return 2


def _claude_step_left(change: Change, err: TextIO) -> int:
    """Settings that switch every hook off make ours useless: say so, it is the user's call."""
    text = change.after if change.changed else change.before
    if load_json_object(change.path, text).get("disableAllHooks") is True:
        print(f"one step left: {change.path} sets \"disableAllHooks\": true, so Claude Code "
              "runs none of its hooks; remove that line to let taskdeck answer", file=err)
        return 1
    return 0


def _misplaced(args: argparse.Namespace) -> str | None:
    """The first option given that belongs to the other agent."""
    if args.agent == "codex":
        for name in ("settings", "project", "user"):
            if getattr(args, name):
                return f"--{name}"
    elif args.codex_home is not None:
        return "--codex-home"
    elif args.verify is not None:
        return "--verify"
    return None


def _show(changes: list[Change], out: TextIO) -> int:
    """`--print`: the diffs, nothing written."""
    diffs = [change.diff() for change in changes if change.changed]
    if not diffs:
        print("already up to date: nothing to change", file=out)
    for diff in diffs:
        out.write(diff)
    return 0


def _apply(changes: list[Change], args: argparse.Namespace, out: TextIO) -> None:
    name = AGENT_NAMES[args.agent]
    todo = [change for change in changes if change.changed]
    if not todo:
        state = "no taskdeck hooks in" if args.remove else "already up to date:"
        print(f"{state} {_names(changes)}", file=out)
        return
    for done, change in enumerate(todo):
        try:
            backup = write(change)
        except BadFile as exc:
            if not done:
                raise
            raise PartlyWritten(f"{exc}, after writing {todo[0].path}: Codex skips the hooks "
                                "it does not trust; run this again once the file is writable") from None
        saved = f" (previous version kept as {backup})" if backup else ""
        print(f"wrote {change.path}{saved}", file=out)
    if args.remove:
        print(f"taskdeck's hooks are out of {name}'s settings", file=out)
    else:
        print(f"{name} now asks taskdeck: start `taskdeck serve` (or the dashboard) "
              f"before the next session", file=out)


def _codex_step_left(home: Path, codex: str | None, out: TextIO, err: TextIO) -> int:
    """Say what still keeps Codex from running our hooks: switched off, or (asked) untrusted."""
    from core.integrate import codex_check, codex_trust

    hooks_json = home / "hooks.json"
    data = load_json_object(hooks_json, read_text(hooks_json))
    ours = codex_trust.ours_trusted(hooks_json, data.get("hooks") or {},
                                    lambda h: is_ours(h, "codex"))
    off = codex_trust.disabled(read_text(home / "config.toml") or "", set(ours))
    if off:
        print(f"one step left: Codex has {len(off)} of taskdeck's hooks switched off "
              "(enabled = false in config.toml); switch them on in Codex's /hooks", file=err)
        return 1
    if codex is None:
        return 0
    binary = shutil.which(codex) or codex
    try:
        listed = codex_check.list_hooks(binary, home, Path.cwd())
    except codex_check.CheckFailed as exc:
        print(f"taskdeck: could not ask Codex: {printable(str(exc))}", file=err)
        return 2
    status = {hook.key: hook.trust for hook in listed if hook.key in ours}
    left = sorted(key for key in ours if status.get(key) != "trusted")
    if left:
        print(f"one step left: Codex ({binary}) does not trust {len(left)} of taskdeck's "
              f"{len(ours)} hooks ({', '.join(_state(k, status) for k in left)}): "
              "run codex, open /hooks and trust them", file=err)
        return 1
    print(f"Codex ({binary}) lists taskdeck's {len(ours)} hooks as trusted", file=out)
    return 0


def _state(key: str, status: dict[str, str]) -> str:
    """`event: trust` for a hook key (`…/hooks.json:EVENT:GROUP:HANDLER`)."""
    return f"{key.split(':')[-3]} {status.get(key, 'not listed')}"


def _names(changes: list[Change]) -> str:
    return ", ".join(str(change.path) for change in changes)
