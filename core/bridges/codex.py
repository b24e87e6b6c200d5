"""`taskdeck hook codex`: Codex runs this for its hooks (`CODEX_HOME/hooks.json`).

What Codex sends and accepts (0.171, checked against the hook schemas in its binary);
the mapping and the runner are shared (hook.py). Codex differs from Claude Code in
three ways:
- PreToolUse can only deny: it refuses `permissionDecision: "allow"`, so an approval
  there prints nothing and the call goes on to Codex's own approval flow;
- a PermissionRequest's answer takes neither `continue: false` nor `interrupt: true`
  (it fails closed on them), so an aborted session's question gets a plain deny naming
  the abort, and the session's next observed event stops it;
- there may be no prompt event, so SessionStart opens the session's root.
A PermissionRequest's `tool_input.description` is the model's justification for the
escalation: the question shows it.

hooks.json, with the hook timeout above the decision's `--timeout` (590 s by default):

    {"hooks": {"PermissionRequest": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook codex", "timeout": 600}]}],
     "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook codex"}]}], ...}}

Codex runs only hooks it trusts (`taskdeck integrate codex` records their hashes). It
gives a SessionEnd hook (reason "other" at the end of `codex exec`) at most 3 s, so the
root is finished in one quick call or not at all (then its lease ends it as lost).
"""

from __future__ import annotations

from typing import Any

from core.bridges.hook import SHARED_EVENTS, Dialect, main as _main

CODEX = Dialect(
    agent="codex",
    title="Codex",
    events=SHARED_EVENTS | {"PreCompact", "PostCompact"},
    pre_tool_allows=False,
    decision_stops=False,
    opens_on_start=True,
)


def main(args: Any) -> int:
    """`taskdeck hook codex`: stdin in, answer out."""
    return _main(args, CODEX)
