"""A Claude Code session in the screenshot scene, made by the real `taskdeck hook claude`.

The events are the hook input Claude Code 2.1.197 sends (recorded from the real binary in
the end-to-end tests; the ids and paths made readable). Each is piped into a real
`taskdeck hook claude` process against the scene's daemon, as Claude Code runs it, so the
tasks, the question and its action are exactly what a real session produces. The last
event, the permission request, waits for a person: `ask` leaves it waiting and returns the
process, which `done` ends once the screenshot is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

from tui.screenshots.scene import SCENE, Scene, Step, wait_for

STEPS: tuple[Step, ...] = tuple(
    step for step in SCENE if step.kind != "ask" or step.parent is None)
"""The demo's scene with one question of its own left, so the inbox has room for the
session's question in full."""

SESSION = "7f3c9a12-5b8e-4d1f-9a6c-2e8b4f1d7a30"
CWD = "/home/dev/shop"
SUB_AGENT = "a41e7c2b9d05f3e86"
COMMAND = 'npm test -- --grep "checkout total"'
ROOT_KEY = f"claude:{SESSION}"
"""The key of the session's root task."""


def _event(name: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": SESSION, "transcript_path": f"/home/dev/.claude/projects/-home-dev-shop/"
            f"{SESSION}.jsonl", "cwd": CWD, "permission_mode": "default",
            "hook_event_name": name, **fields}


def _sub(name: str, **fields: Any) -> dict[str, Any]:
    return _event(name, agent_id=SUB_AGENT, agent_type="Explore", **fields)


OBSERVED: tuple[dict[str, Any], ...] = (
    _event("SessionStart", source="startup", model="claude-sonnet-4-5"),
    _event("UserPromptSubmit", prompt="fix the rounding bug in the checkout total"),
    _sub("SubagentStart"),
    _sub("PostToolUse", tool_name="Grep", tool_input={"pattern": "round\\(", "path": "src"},
         tool_response={}, tool_use_id="toolu_01GrepRound"),
    _sub("PostToolUse", tool_name="Read", tool_input={"file_path": f"{CWD}/src/cart/total.ts"},
         tool_response={}, tool_use_id="toolu_01ReadTotal"),
    _event("PostToolUse", tool_name="Edit",
           tool_input={"file_path": f"{CWD}/src/cart/total.ts",
                       "old_string": "return round(sum) + round(tax);",
                       "new_string": "return round(sum + tax);"},
           tool_response={}, tool_use_id="toolu_01EditTotal"),
)
"""The session so far: a prompt, an Explore sub-agent reading, an edit."""

PERMISSION = _event(
    "PermissionRequest", tool_name="Bash",
    tool_input={"command": COMMAND, "description": "Run the checkout total tests"},
    permission_suggestions=[{"type": "addRules", "rules": [
        {"toolName": "Bash", "ruleContent": "npm test *"}], "behavior": "allow",
        "destination": "localSettings"}],
)
"""What Claude Code asks next: to run the tests."""


async def _hook(scene: Scene, event: dict[str, Any], stdout: int = asyncio.subprocess.DEVNULL
                ) -> asyncio.subprocess.Process:
    """`taskdeck hook claude` with the event on stdin, as Claude Code starts it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "hook", "claude",
        env={**os.environ, "TASKDECK_RUNTIME_DIR": str(scene.runtime_dir)},
        stdin=asyncio.subprocess.PIPE, stdout=stdout, stderr=asyncio.subprocess.DEVNULL)
    assert process.stdin is not None
    process.stdin.write(json.dumps(event).encode())
    process.stdin.close()
    return process


async def ask(scene: Scene) -> asyncio.subprocess.Process:
    """Play the session's events into the scene; returns the hook that waits for a person
    (its stdout, the answer Claude Code would read, is a pipe)."""
    for event in OBSERVED:
        scene.clock.advance(4)
        process = await _hook(scene, event)
        if await process.wait() != 0:
            raise SystemExit(f"screenshots: the hook failed on {event['hook_event_name']}")
    scene.clock.advance(3)
    waiting = await _hook(scene, PERMISSION, stdout=asyncio.subprocess.PIPE)
    registry = scene.registry
    assert registry is not None
    await wait_for(lambda: any(p.action is not None and p.state.value == "pending"
                               for p in registry.snapshot().prompts))
    return waiting


async def done(waiting: asyncio.subprocess.Process) -> None:
    """End the waiting hook (it closes its question as it does when Claude Code stops it)."""
    with contextlib.suppress(ProcessLookupError):
        waiting.terminate()
    await waiting.communicate()
