"""`taskdeck hook claude`: Claude Code runs this for its hooks, one JSON object on stdin.

What Claude Code sends and accepts; the mapping and the runner are shared (hook.py).
Claude Code opens the session's root with its first prompt, whose text the root's
description carries; PreToolUse may allow; any answer may also stop the session
(`continue: false`, and `interrupt` on a PermissionRequest's deny).

Settings, with the hook timeout above the decision's `--timeout` (590 s by default):

    {"hooks": {"PermissionRequest": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude", "timeout": 600}]}],
     "PreToolUse": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude --gate Bash", "timeout": 600}]}],
     "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude"}]}], ...}}
"""

from __future__ import annotations

from typing import Any

from core.bridges.hook import SHARED_EVENTS, Dialect, main as _main

CLAUDE = Dialect(
    agent="claude",
    title="Claude Code",
    events=SHARED_EVENTS | {"PostToolBatch", "Notification"},
)


def main(args: Any) -> int:
    """`taskdeck hook claude`: stdin in, answer out."""
    return _main(args, CLAUDE)
