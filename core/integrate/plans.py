"""What `integrate` changes for each agent: the files, their new text, nothing written yet.

Claude Code: one settings file. Codex: CODEX_HOME/hooks.json plus the trust entries in
CODEX_HOME/config.toml without which Codex skips the hooks. Every hook event the bridge
handles gets one handler running the same command; the timeouts differ on purpose (see
core.integrate.command), and an agent's own cap on an event's timeout is written as is
(Codex trusts a hook by a hash of the timeout it will really use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.integrate import codex_trust
from core.integrate.command import (
    DEFAULT_WAIT,
    OBSERVATION_TIMEOUT,
    HookOptions,
    hook_command,
    is_ours,
)
from core.integrate.files import BadFile, Change, dump_json, load_json_object, read_text
from core.integrate.hooks import Wanted, check, install, remove

CLAUDE_EVENTS = (
    "SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse",
    "PostToolBatch", "Notification", "Stop", "SubagentStart", "SubagentStop", "SessionEnd",
)
CODEX_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest",
                "PostToolUse", "Stop", "SessionEnd")
CODEX_TIMEOUT_CAPS = {"SessionEnd": codex_trust.SESSION_END_TIMEOUT}
TOOL_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse"})
"""Events whose matcher names a tool: ours is `*`, every tool; the others take none."""


def wanted(agent: str, events: tuple[str, ...], options: HookOptions,
           base: list[str] | None = None, caps: Mapping[str, int] | None = None
           ) -> dict[str, Wanted]:
    """Our handler per event: decisions wait for a person, the rest answer at once.

    `caps`: the most seconds the agent gives an event's hook, written instead of more.
    """
    command = hook_command(agent, options, DEFAULT_WAIT, base)
    decision = options.hook_timeout(DEFAULT_WAIT)

    def timeout(event: str) -> int:
        waits = event == "PermissionRequest" or (event == "PreToolUse" and options.gates)
        seconds = decision if waits else OBSERVATION_TIMEOUT
        return min(seconds, (caps or {}).get(event, seconds))

    return {
        event: Wanted(
            "*" if event in TOOL_EVENTS else None,
            {"type": "command", "command": command, "timeout": timeout(event)},
        )
        for event in events
    }


def _ours(agent: str):
    return lambda handler: is_ours(handler, agent)


def _hooks_change(path: Path, agent: str, want: Mapping[str, Wanted] | None
                  ) -> tuple[Change, dict[str, Any], dict[str, Any]]:
    """The settings file's change: installing `want`, or removing ours when it is None."""
    text = read_text(path)
    data = load_json_object(path, text)
    check(data, str(path))
    new = remove(data, _ours(agent)) if want is None else install(data, want, _ours(agent))
    return Change(path, text, None if new == data else dump_json(new, text)), data, new


def claude_settings(settings: Path | None, project: Path | None, user: bool) -> Path:
    """The settings file the options name; the user's own by default.

    A project gets `.claude/settings.local.json`, the file Claude Code keeps out of git:
    the command names this machine's interpreter, no use to anybody else.
    """
    if settings is not None:
        return settings.expanduser().absolute()
    if project is not None:
        return project.expanduser().absolute() / ".claude" / "settings.local.json"
    root = os.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".claude") / "settings.json"


def claude(path: Path, options: HookOptions | None, base: list[str] | None = None) -> list[Change]:
    """Claude Code: the one settings file (options None: take our hooks out)."""
    want = None if options is None else wanted("claude", CLAUDE_EVENTS, options, base)
    return [_hooks_change(path, "claude", want)[0]]


def codex_home(given: Path | None) -> Path:
    """CODEX_HOME as Codex finds it: the option, else $CODEX_HOME, else ~/.codex."""
    if given is None:
        env = os.environ.get("CODEX_HOME")
        given = Path(env) if env else Path.home() / ".codex"
    home = given.expanduser().absolute()
    # Codex resolves CODEX_HOME's symlinks, and its trust keys name the resolved path.
    return home.resolve() if home.exists() else home


def codex(home: Path, options: HookOptions | None, base: list[str] | None = None) -> list[Change]:
    """Codex: hooks.json, and config.toml trusting exactly our handlers there."""
    hooks_json, config = home / "hooks.json", home / "config.toml"
    want = None if options is None else wanted("codex", CODEX_EVENTS, options, base,
                                               CODEX_TIMEOUT_CAPS)
    change, before, after = _hooks_change(hooks_json, "codex", want)
    ours = _ours("codex")
    old_keys = codex_trust.ours_trusted(hooks_json, before.get("hooks") or {}, ours)
    trusted = codex_trust.ours_trusted(hooks_json, after.get("hooks") or {}, ours)
    moved = codex_trust.moved_keys(hooks_json, before.get("hooks") or {},
                                   after.get("hooks") or {}, ours)
    untrusted = set(old_keys) - set(trusted) - set(moved.values())
    text = read_text(config)
    try:
        new_config = codex_trust.apply_trust(text or "", trusted, untrusted, moved)
    except BadFile as exc:
        raise BadFile(f"{config}: {exc}") from None
    return [change, Change(config, text, None if new_config == (text or "") else new_config)]
