"""Codex hook trust: the `[hooks.state."KEY"] trusted_hash` entries that let a hook run.

Codex skips a hook from hooks.json until config.toml holds, under a key naming the hook
by position (`<hooks.json>:<snake_case_event>:<group>:<handler>`), the SHA-256 of the
hook's configuration entry. Read from Codex's source (hooks/src/engine/discovery.rs,
config/src/fingerprint.rs) and checked against the pinned binary's `hooks/list`:

- the hashed identity is `{"event_name": snake_case, "matcher": M, "hooks": [HANDLER]}`,
  where HANDLER is the one command handler with its timeout filled in (600 s when unset,
  at least 1; a SessionEnd handler's is held to 1..3 s and is 1 s when unset) and fields that are unset left out (it goes through TOML, which has no
  null); `matcher` is left out when unset, and always for events that ignore it;
- the hash is over that object as compact JSON with every object's keys sorted, UTF-8,
  non-ASCII unescaped, written `sha256:<hex>`;
- the key's path is hooks.json's in CODEX_HOME with that folder's symlinks resolved.

Only taskdeck's own handlers are ever trusted here: trusting a hook is the user's word
that they read it, and we can give it only for the command we write ourselves.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from core.integrate.files import BadFile

EVENT_KEYS = {
    "PreToolUse": "pre_tool_use",
    "PermissionRequest": "permission_request",
    "PostToolUse": "post_tool_use",
    "PreCompact": "pre_compact",
    "PostCompact": "post_compact",
    "SessionStart": "session_start",
    "UserPromptSubmit": "user_prompt_submit",
    "Stop": "stop",
    "SessionEnd": "session_end",
}
"""The events Codex reads from hooks.json, and the label its trust keys and hashes use."""

MATCHED_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart",
                            "SessionEnd"})
"""Events whose matcher Codex reads; for the others it ignores the matcher, hash included."""

DEFAULT_TIMEOUT = 600
"""Seconds Codex gives a command hook that names no timeout (and hashes as its timeout)."""

SESSION_END_TIMEOUT = 3
"""The most seconds Codex gives a SessionEnd hook (the session is closing): a longer
timeout is cut to this, and the hash is of the cut value, so a hook written with more
shows as "modified" until it is trusted again."""

SESSION_END_DEFAULT_TIMEOUT = 1
"""Seconds Codex gives, and hashes for, a SessionEnd hook that names no timeout."""

Handler = Mapping[str, Any]
IsOurs = Callable[[Handler], bool]


def trust_hash(event: str, matcher: str | None, handler: Handler) -> str:
    """The `trusted_hash` Codex computes for one command handler of one matcher group."""
    normalized: dict[str, Any] = {
        "type": "command",
        "command": handler["command"],
        "timeout": effective_timeout(event, handler.get("timeout")),
        "async": bool(handler.get("async", False)),
    }
    if handler.get("statusMessage") is not None:
        normalized["statusMessage"] = handler["statusMessage"]
    identity: dict[str, Any] = {"event_name": EVENT_KEYS[event], "hooks": [normalized]}
    if matcher is not None and event in MATCHED_EVENTS:
        identity["matcher"] = matcher
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def effective_timeout(event: str, timeout: Any) -> int:
    """The seconds Codex gives this event's hook written with `timeout` (None: unset)."""
    if event == "SessionEnd":
        return min(max(1, int(timeout or SESSION_END_DEFAULT_TIMEOUT)), SESSION_END_TIMEOUT)
    return max(1, int(timeout or DEFAULT_TIMEOUT))


def hook_key(hooks_json: Path, event: str, group: int, handler: int) -> str:
    """The key Codex files a hook's state under in config.toml.

    The folder is resolved (Codex canonicalises CODEX_HOME), the file's own name is not
    (a symlinked hooks.json keeps its name in Codex's key).
    """
    return f"{hooks_json.parent.resolve() / hooks_json.name}:{EVENT_KEYS[event]}:{group}:{handler}"


def _handlers(hooks: Mapping[str, Any]) -> Iterator[tuple[str, int, int, str | None, Handler]]:
    """Every command handler of the events Codex reads: (event, group, index, matcher, handler)."""
    for event, groups in hooks.items():
        if event not in EVENT_KEYS or not isinstance(groups, list):
            continue
        for g, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                continue
            matcher = group.get("matcher")
            for h, handler in enumerate(group["hooks"]):
                if isinstance(handler, dict) and handler.get("type") == "command":
                    yield event, g, h, matcher if isinstance(matcher, str) else None, handler


def ours_trusted(hooks_json: Path, hooks: Mapping[str, Any], is_ours: IsOurs) -> dict[str, str]:
    """The trust entries taskdeck's handlers need: key -> hash."""
    return {
        hook_key(hooks_json, event, g, h): trust_hash(event, matcher, handler)
        for event, g, h, matcher, handler in _handlers(hooks)
        if is_ours(handler)
    }


def moved_keys(
    hooks_json: Path, before: Mapping[str, Any], after: Mapping[str, Any], is_ours: IsOurs
) -> dict[str, str]:
    """The user's hooks whose position changed between two versions of the file: old key -> new.

    Taking our group out shifts the user's later groups up by one; their trust must follow
    them, or Codex would quietly stop running hooks the user had trusted.
    """
    def places(hooks: Mapping[str, Any]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for event, g, h, _matcher, handler in _handlers(hooks):
            if not is_ours(handler):
                found.setdefault(event, []).append(hook_key(hooks_json, event, g, h))
        return found

    old, new = places(before), places(after)
    return {
        was: now
        for event in old
        for was, now in zip(old[event], new.get(event, []), strict=False)
        if was != now
    }


def apply_trust(
    config_text: str,
    trusted: Mapping[str, str],
    untrusted: Collection[str] = (),
    moved: Mapping[str, str] | None = None,
) -> str:
    """config.toml's text with these trust entries set, these removed, these moved.

    The user's comments, layout and every other key are kept (tomlkit round-trips them);
    a state entry's other keys (`enabled`) are kept too. The result is read back and
    compared with the same change made to plain data: a layout tomlkit would edit wrongly
    (inline tables, dotted keys) is refused rather than written.

    Raises:
        BadFile: not TOML, `hooks` / `hooks.state` not a table, or a layout we cannot edit.
    """
    try:
        doc = tomlkit.parse(config_text)
        expected = tomllib.loads(config_text)
    except (TOMLKitError, tomllib.TOMLDecodeError) as exc:
        raise BadFile(f"is not valid TOML ({_first_line(exc)})") from None
    if _table(doc, "hooks", "hooks") is None and not trusted:
        return config_text
    _edit(expected, trusted, untrusted, moved or {}, dict, dict)
    try:
        _edit(doc, trusted, untrusted, moved or {}, tomlkit.table,
              lambda: tomlkit.table(is_super_table=True))
        text = tomlkit.dumps(doc)
        # Removed tables leave their blank lines behind; a file left with nothing is empty.
        written = config_text if text == config_text else (
            text.rstrip("\n") + "\n" if text.strip() else "")
        same = tomllib.loads(written) == expected
    except (TOMLKitError, tomllib.TOMLDecodeError, ValueError, TypeError):
        same = False
    if not same:
        raise BadFile("has `hooks` in a form taskdeck cannot edit without changing its "
                      "meaning (an inline table or dotted keys); write it as "
                      '[hooks.state."KEY"] tables and run again')
    return written


def _edit(doc: Any, trusted: Mapping[str, str], untrusted: Collection[str],
          moved: Mapping[str, str], new_table: Callable[[], Any],
          new_super: Callable[[], Any]) -> None:
    """The trust change on a TOML document: tomlkit's, or plain dicts to check it against."""
    hooks = _table(doc, "hooks", "hooks")
    state = _table(hooks, "state", "hooks.state") if hooks is not None else None
    if hooks is None:
        hooks = doc["hooks"] = new_super()
    if state is None:
        state = hooks["state"] = new_super()
    had_entries = bool(state)
    carried = {now: state[was] for was, now in moved.items() if was in state}
    for was in moved:
        if was in state:
            del state[was]
    for key, entry in carried.items():
        state[key] = entry
    for key in untrusted:
        entry = state.get(key)
        if key in trusted or not isinstance(entry, Mapping):
            continue
        entry.pop("trusted_hash", None)
        if not entry:  # what the user set there (`enabled`) stays
            del state[key]
    for key, digest in trusted.items():
        if not isinstance(state.get(key), Mapping):
            state.pop(key, None)
            state[key] = new_table()
        state[key]["trusted_hash"] = digest
    if not state and (had_entries or not trusted):  # emptied by us, or made for nothing
        del hooks["state"]
        if not hooks:
            del doc["hooks"]


def disabled(config_text: str, keys: set[str]) -> list[str]:
    """Those of these hook keys the user switched off in Codex (`enabled = false`)."""
    try:
        doc = tomlkit.parse(config_text).unwrap()
    except TOMLKitError:
        return []
    state = doc.get("hooks", {}).get("state", {}) if isinstance(doc.get("hooks"), dict) else {}
    if not isinstance(state, dict):
        return []
    return sorted(k for k in keys if isinstance(state.get(k), dict) and state[k].get("enabled") is False)


def _table(container: Any, name: str, label: str) -> Any:
    value = container.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise BadFile(f"has `{label}` that is not a table")
    return value


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
