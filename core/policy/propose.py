"""The rule a person most likely means when they say "and remember" to an action.

The agent's own suggestion comes first (Claude Code's `permission_suggestions`, carried in
`Action.suggestions`).

`npm test -- --watch` proposes `Bash(npm test *)`: the command and its subcommand, any
arguments. An edit of `/repo/src/app.py` (cwd `/repo`) proposes `Edit(src/**)`, a fetch
`WebFetch(domain:host)`, any other tool its bare name. The person edits it before it is saved.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit

from core.errors import BadRequest
from core.model import Action
from core.policy.pattern import EDIT_TOOLS, READ_TOOLS, Pattern
from core.policy.shell import read

_SUBCOMMAND = re.compile(r"[a-z][a-z0-9:_\-]*")
"""A word that reads as a subcommand (`test`, `run`, `status`), not an argument or a path."""


def propose(action: Action) -> str:
    """A pattern, in Claude Code's syntax, that covers this action and its like: the agent's
    own first suggestion when it makes one that reads as a narrow rule, else one of ours."""
    for suggestion in action.suggestions:
        try:
            pattern = Pattern.parse(suggestion)
        except BadRequest:
            continue
        if not pattern.everything:
            return pattern.text
    command = action.command
    if command is not None:
        return _shell(command)
    if action.path is not None and action.tool in EDIT_TOOLS | READ_TOOLS:
        family = "Edit" if action.tool in EDIT_TOOLS else "Read"
        return f"{family}({_path(action.path, action.cwd)})"
    if action.tool == "WebFetch" and action.url:
        try:
            host = urlsplit(action.url).hostname
        except ValueError:
            host = None
        if host:
            return f"WebFetch(domain:{host})"
    return action.tool


def _shell(command: str) -> str:
    parts = read(command).parts
    if not parts:
        return f"Bash({command.strip()})"
    words = parts[0].exact.split(" ")
    head = words[:2] if len(words) > 1 and _SUBCOMMAND.fullmatch(words[1]) else words[:1]
    return f"Bash({' '.join(head)} *)"


def _path(path: str, cwd: str | None) -> str:
    """The file's folder, relative to the cwd when inside it, else absolute (`//etc/**`)."""
    if cwd:
        target = posixpath.normpath(posixpath.join(cwd, path))
        relative = posixpath.relpath(target, posixpath.normpath(cwd))
        if not relative.startswith(".."):
            return _folder(relative)
        return "/" + _folder(target)
    target = posixpath.normpath(path)
    return "/" + _folder(target) if posixpath.isabs(target) else _folder(target)


def _folder(path: str) -> str:
    folder = posixpath.dirname(path)
    return f"{folder}/**" if folder and folder != "/" else path
