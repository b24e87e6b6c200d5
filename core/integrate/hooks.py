"""Merging taskdeck's hooks into an agent's `{"hooks": {EVENT: [group, ...]}}` settings.

Claude Code's settings and Codex's hooks.json share this shape: per event a list of
matcher groups, each with a list of handlers. Pure functions, data in and data out:

- ours are the handlers `is_ours` recognises (by their command); everything else is the
  user's and is never changed, moved or reordered;
- installing replaces our first handler of an event in place (so its position, and a
  Codex trust key, stays), drops any other copy of ours, and appends a group of our own
  at the end of the event's list when we had none (so the user's groups keep their places);
- removing takes out exactly our handlers, then the groups, event lists and `hooks`
  object that this left empty (containers that were empty before are left alone).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.integrate.files import BadFile

Handler = dict[str, Any]


@dataclass(frozen=True)
class Wanted:
    """Our hook for one event: the group's matcher (None: the event takes none) and handler."""

    matcher: str | None
    handler: Handler


def check(data: Mapping[str, Any], where: str) -> None:
    """Refuse settings whose `hooks` is not the shape every agent expects.

    Raises:
        BadFile: naming the first part of the wrong type.
    """
    hooks = data.get("hooks")
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise BadFile(f"{where}: `hooks` is {_kind(hooks)}, not an object")
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise BadFile(f"{where}: `hooks.{event}` is {_kind(groups)}, not a list")
        for i, group in enumerate(groups):
            if not isinstance(group, dict):
                raise BadFile(f"{where}: `hooks.{event}[{i}]` is {_kind(group)}, not an object")
            handlers = group.get("hooks", [])
            if not isinstance(handlers, list):
                raise BadFile(f"{where}: `hooks.{event}[{i}].hooks` is {_kind(handlers)}, not a list")


def install(data: Mapping[str, Any], wanted: Mapping[str, Wanted],
            is_ours: Callable[[Mapping[str, Any]], bool]) -> dict[str, Any]:
    """The settings with our hooks exactly `wanted`: one per event named, none elsewhere."""
    new = copy.deepcopy(dict(data))
    hooks = new.setdefault("hooks", {})
    placed: set[str] = set()
    for event in list(hooks):
        groups = hooks[event]
        kept = []
        for group in groups:
            group = _without_ours(group, event, wanted, placed, is_ours)
            if group is not None:
                kept.append(group)
        if kept or not groups:
            hooks[event] = kept
        else:
            del hooks[event]
    for event, want in wanted.items():
        if event not in placed:
            hooks.setdefault(event, []).append(_group(want))
    return new


def remove(data: Mapping[str, Any], is_ours: Callable[[Mapping[str, Any]], bool]) -> dict[str, Any]:
    """The settings without any of our hooks, and without the containers that left empty."""
    had_hooks = bool(data.get("hooks"))
    new = install(data, {}, is_ours)
    if had_hooks and not new["hooks"]:
        del new["hooks"]
    elif "hooks" not in data:
        del new["hooks"]
    return new


def _without_ours(group: dict[str, Any], event: str, wanted: Mapping[str, Wanted],
                  placed: set[str], is_ours: Callable[[Mapping[str, Any]], bool]) -> dict[str, Any] | None:
    """The group with our handlers replaced (the event's first) or dropped; None when emptied."""
    handlers = group.get("hooks", [])
    if not any(is_ours(h) for h in handlers):
        return group
    kept = []
    for handler in handlers:
        if not is_ours(handler):
            kept.append(handler)
        elif event in wanted and event not in placed:
            placed.add(event)
            kept.append(dict(wanted[event].handler))
    if not kept:
        return None
    if event in placed and all(is_ours(h) for h in kept):
        # A group of ours alone: its matcher is ours to set too.
        rebuilt = _group(wanted[event])
        rebuilt["hooks"] = kept
        rebuilt.update((k, v) for k, v in group.items() if k not in ("matcher", "hooks"))
        return rebuilt
    return {**group, "hooks": kept}


def _group(want: Wanted) -> dict[str, Any]:
    group: dict[str, Any] = {} if want.matcher is None else {"matcher": want.matcher}
    group["hooks"] = [dict(want.handler)]
    return group


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")
