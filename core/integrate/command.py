"""The hook command we write into an agent's settings, and how we know it again.

The command must run from any directory and any PATH (agents start hooks with their own
environment), so it names this very installation by absolute path: the `taskdeck` script
that is running now, or else this interpreter with `-m core.entry` (the `taskdeck`
script's own module: `hook` starts without loading the rest of the command line, which
an agent pays for on every event). It is shell-quoted, since agents run hook commands
through a shell.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_WAIT = 590.0
"""Seconds a decision waits for a person unless `--timeout` says otherwise: the bridge's
own default. Written into every command explicitly, so the hook's timeout and the
bridge's wait agree even if the bridge's default changes later."""

DECISION_MARGIN = 10.0
"""Seconds a decision hook's timeout exceeds the bridge's own wait for a person, so the
bridge closes the prompt and prints its fail-safe answer before the agent kills it."""

OBSERVATION_TIMEOUT = 10
"""Seconds for an event that only updates the tree: it answers in well under a second,
and a stuck daemon must not hold the agent up for the default 600 s."""


ENTRY_MODULE = "core.entry"
"""What the interpreter runs when there is no `taskdeck` script: its quick `hook` path."""

MODULES = frozenset({ENTRY_MODULE, "core.cli"})
"""Modules a hook command of ours may run (`core.cli` is what earlier versions wrote)."""


@dataclass(frozen=True)
class HookOptions:
    """What `taskdeck hook AGENT` is told on its command line."""

    gates: tuple[str, ...] = ()
    timeout: float | None = None
    idle: float | None = None
    runtime_dir: Path | None = None
    """A daemon started with `--runtime-dir` is found by hooks told the same."""

    def arguments(self, default_timeout: float) -> list[str]:
        args: list[str] = []
        if self.runtime_dir is not None:
            args += ["--runtime-dir", str(self.runtime_dir.expanduser().absolute())]
        for tool in self.gates:
            args += ["--gate", tool]
        args += ["--timeout", _number(self.decision_wait(default_timeout))]
        if self.idle is not None:
            args += ["--idle", _number(self.idle)]
        return args

    def decision_wait(self, default_timeout: float) -> float:
        return self.timeout if self.timeout is not None else default_timeout

    def hook_timeout(self, default_timeout: float) -> int:
        """The timeout (whole seconds) written for a hook that may wait for a person."""
        return math.ceil(self.decision_wait(default_timeout) + DECISION_MARGIN)


def _number(value: float) -> str:
    return f"{value:g}"


def entry_point(argv0: str | None = None, executable: str | None = None) -> list[str]:
    """The absolute argv that starts this taskdeck: its script, or `python -m core.entry`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    script = Path(argv0)
    # Absolute but not resolved: a package manager's link (~/.local/bin/taskdeck) outlives
    # upgrades that move the file it points to, and a venv's python is a link whose
    # target is outside the venv.
    if script.name == "taskdeck" and script.is_file():
        return [str(script.absolute())]
    return [str(Path(executable or sys.executable).absolute()), "-m", ENTRY_MODULE]


def hook_command(agent: str, options: HookOptions, default_timeout: float,
                 base: Sequence[str] | None = None) -> str:
    """The shell command an agent runs for every hook event."""
    argv = [*(base or entry_point()), "hook", agent, *options.arguments(default_timeout)]
    return shlex.join(argv)


def is_ours(handler: Mapping[str, Any], agent: str) -> bool:
    """True for a command handler that runs `taskdeck hook AGENT`, however it was written.

    Recognised: `.../taskdeck hook AGENT ...` (ours, or written by hand from the README),
    `PYTHON -m core.entry hook AGENT ...`, and `PYTHON -m core.cli hook AGENT ...` as
    earlier versions wrote it (found, so that it is replaced).
    """
    command = handler.get("command")
    if handler.get("type") != "command" or not isinstance(command, str):
        return False
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    for start in _starts(argv):
        if argv[start:start + 2] == ["hook", agent]:
            return True
    return False


def _starts(argv: list[str]) -> Iterable[int]:
    """Where the subcommand begins, for each way of starting taskdeck argv may use."""
    if argv and Path(argv[0]).name == "taskdeck":
        yield 1
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] in MODULES:
        yield 3
