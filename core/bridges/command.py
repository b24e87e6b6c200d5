"""The `taskdeck hook AGENT` command line, and a start that loads only what a hook needs.

Agents start the hook for every event of every session and wait for it, so its start-up
is on their path: `taskdeck hook ...` is parsed here without importing the rest of the
command line (whose `asyncio` alone costs about a third of a hook's start-up).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.bridges.hook import DEFAULT_IDLE_MINUTES, DEFAULT_TIMEOUT

AGENTS = ("claude", "codex")
"""The agents whose hooks `taskdeck hook` answers, each a dialect module of this package."""

RUNTIME_DIR_HELP = (
    "directory of the daemon's sockets and connection file (env TASKDECK_RUNTIME_DIR; "
    "default: $XDG_RUNTIME_DIR/taskdeck, without XDG_RUNTIME_DIR /tmp/taskdeck-UID, "
    "made private to you)"
)


def positive(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(hook: argparse.ArgumentParser) -> None:
    """The hook command's arguments, for `taskdeck`'s parser and for the quick start."""
    hook.add_argument("agent", choices=AGENTS, help="the agent whose hook runs this")
    hook.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="TOOL",
        help="ask a person before every use of this tool, at PreToolUse (repeatable); "
        "PermissionRequest always asks",
    )
    hook.add_argument(
        "--idle",
        type=positive,
        default=DEFAULT_IDLE_MINUTES,
        metavar="MINUTES",
        help=f"a session silent this long ends as lost (default {DEFAULT_IDLE_MINUTES:g})",
    )
    hook.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for a person, then deny (default {DEFAULT_TIMEOUT:g}: under "
        "the 600 s hook timeout)",
    )


def run(args: Any) -> int:
    """Answer one hook event with the dialect of `args.agent`."""
    if args.agent == "codex":
        from core.bridges import codex as bridge
    else:
        from core.bridges import claude as bridge
    return bridge.main(args)


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` reads it ($COLUMNS, the tty, 80)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help, sized without importing `shutil`: argparse builds a formatter for
    every argument added, and that import (with its compression modules) is ~2 ms of
    every hook's start, for a help text a hook never prints."""

    def __init__(self, prog: str, **options: Any) -> None:
        options.setdefault("width", _columns() - 2)
        super().__init__(prog, **options)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line, as in the rest of `taskdeck`."""

    def error(self, message: str) -> Any:
        from core.text import printable

        self.exit(2, f"{self.prog}: {printable(message)} (see {self.prog} --help)\n")


def main(argv: Sequence[str]) -> int:
    """`taskdeck hook ARGS...` without the rest of the command line."""
    parser = _Parser(prog="taskdeck hook", formatter_class=_Formatter,
                     description="answer an agent's hook: one JSON event on stdin")
    add_arguments(parser)
    parser.add_argument("--runtime-dir", type=Path, default=None, metavar="DIR",
                        help=RUNTIME_DIR_HELP)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
