"""Rule patterns in Claude Code's permission syntax, read once and matched against actions.

`Tool` matches every use of a tool; `Tool(specifier)` a part of them:

* shell: `Bash(npm run test *)`: `*` is any text; a trailing ` *` also matches nothing
  (`npm test` itself), and `npm test:*` is the older spelling of `npm test *`. `Bash` covers
  every shell tool of every agent (Claude Code's Bash, Codex's exec_command, ...).
* files: `Edit(src/**)`, `Read(./docs/**)`: gitignore-style globs (`**` any depth, `*`
  within a directory, a pattern without `/` matches a name at any depth) over the path,
  resolved against the action's working directory; `//abs/path` is absolute, `~/` is home.
  `Edit` covers Edit, Write, MultiEdit and NotebookEdit; `Read` covers Read, Grep, Glob, LS.
* fetches: `WebFetch(domain:example.com)`; `domain:*.example.com` adds its subdomains.
* any other tool takes no specifier; its name may end in `*` (`mcp__github__*`).

Matching never consults anything but the pattern and the action: no registry, no time.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import posixpath
import re
from urllib.parse import urlsplit

from core.errors import BadRequest
from core.model import MAX_TEXT, Action
from core.policy.shell import Reading, read

SHELL = "#shell"
"""Index key of every shell tool's actions."""

SHELL_NAMES = frozenset({"bash", "shell", "exec_command", "local_shell"})
"""Tool names (any case) a `Bash(...)` rule also covers."""

EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
READ_TOOLS = frozenset({"Read", "Grep", "Glob", "LS", "NotebookRead"})

FAMILIES: dict[str, frozenset[str]] = {
    "Edit": EDIT_TOOLS, "Read": READ_TOOLS,
    **{tool: frozenset({tool}) for tool in ("Write", "MultiEdit", "NotebookEdit", "Grep",
                                            "Glob", "LS", "NotebookRead")},
}
"""File tools a path rule of each name covers."""

MAX_WILDCARDS = 16
"""Most `*` in one pattern: keeps every match linear in the text it reads."""

_TOOL = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*\*?|\*")
_EVERYTHING_SPECS = frozenset({"*", "**", "domain:*", "*:*"})


@dataclasses.dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed rule pattern; `Pattern.parse` is the only way to make one."""

    text: str
    """The pattern in its canonical spelling, e.g. `Bash(npm test *)`."""
    tool: str
    """The tool name as written (`Bash`, `Edit`, `mcp__x__*`)."""
    kind: str
    """"shell", "path", "domain" or "tool"."""
    keys: frozenset[str]
    """Index keys of the actions it can match (`SHELL` or tool names; empty: a tool glob)."""
    spec: str | None
    """The specifier inside the parentheses; None for a bare tool."""
    first: str | None
    """What the pattern is about, when literal, for the index: a shell pattern's command
    word, a path pattern's first directory ("src", or "/etc" when absolute), a domain."""
    _regex: re.Pattern[str] | Wildcard | PathGlob | None

    @property
    def everything(self) -> bool:
        """True when it matches every use of every tool it names (`Bash`, `Read(**)`, `*`)."""
        return self.spec is None or self.spec in _EVERYTHING_SPECS or self.tool == "*"

    @classmethod
    def parse(cls, text: str) -> Pattern:
        """Read a pattern; a malformed one is one line saying what is wrong.

        Raises:
            BadRequest: empty, unbalanced, an unknown specifier form, or a specifier on a
                tool that takes none.
        """
        raw = text.strip()
        if not raw:
            raise BadRequest("empty rule pattern: give a tool, e.g. Bash(npm test *)")
        if len(raw) > MAX_TEXT:
            raise BadRequest(f"rule pattern is longer than {MAX_TEXT} characters")
        tool, paren, rest = raw.partition("(")
        tool = tool.strip()
        if not _TOOL.fullmatch(tool):
            raise BadRequest(f"rule pattern {raw!r}: {tool!r} is not a tool name "
                             "(letters, digits, _ - . and a final *)")
        if not paren:
            return _bare(tool)
        if not rest.endswith(")"):
            raise BadRequest(f"rule pattern {raw!r}: missing the closing ')'")
        spec = " ".join(rest[:-1].split())
        if not spec:
            raise BadRequest(f"rule pattern {raw!r}: empty parentheses (write {tool} alone "
                             "to match every use)")
        if spec.count("*") > MAX_WILDCARDS:
            raise BadRequest(f"rule pattern {raw!r}: more than {MAX_WILDCARDS} wildcards")
        if tool.lower() in SHELL_NAMES:
            return _shell(spec)
        if tool in FAMILIES:
            return _path(tool, spec)
        if tool == "WebFetch":
            return _domain(spec)
        raise BadRequest(f"rule pattern {raw!r}: {tool} takes no specifier (only Bash, "
                         f"{', '.join(sorted(FAMILIES))} and WebFetch do); write {tool} alone")

    def matches(self, action: Action, *, loose: bool) -> bool:
        """True when the action is one this pattern names.

        Args:
            loose: match as a deny or ask rule (every reading of the action that could be
                it), rather than as an allow rule (only what it plainly is).
        """
        if self.kind == "shell":
            command = action.command
            if command is None:
                return False
            reading = read(command)
            return (any(self.matches_part(p.exact, p.loose, loose=True) for p in reading.parts)
                    if loose else self.allows_all(reading))
        if self.spec is None:
            return self.covers(action.tool)
        if not self.covers(action.tool) or self._regex is None:
            return False
        if self.kind == "domain":
            host = _host(action.url)
            return host is not None and self._regex.fullmatch(host) is not None
        return self._match_path(action, loose=loose)

    def covers(self, tool: str) -> bool:
        """True when the pattern is about this tool."""
        if self.kind == "shell":
            return tool.lower() in SHELL_NAMES
        if not self.keys:
            return fnmatch.fnmatchcase(tool, self.tool)
        return tool in self.keys

    def matches_part(self, exact: str, loose_text: str, *, loose: bool) -> bool:
        """A shell pattern against one simple command (both views when `loose`)."""
        if self._regex is None:
            return True
        if self._regex.fullmatch(exact):
            return True
        return loose and bool(self._regex.fullmatch(loose_text))

    def allows_all(self, reading: Reading) -> bool:
        """True when every part of a surely read command matches (an allow on its own)."""
        return reading.sure and all(self.matches_part(p.exact, p.loose, loose=False)
                                    for p in reading.parts)

    def _match_path(self, action: Action, *, loose: bool) -> bool:
        path = action.path
        if path is None or self._regex is None:
            return False
        spec = self.spec or ""
        absolute = spec.startswith(("//", "~/"))
        if posixpath.isabs(path):
            target = posixpath.normpath(path)
        elif action.cwd:
            target = posixpath.normpath(posixpath.join(action.cwd, path))
        elif not absolute:  # both relative to the same unknown directory
            return bool(self._regex.fullmatch(posixpath.normpath(path)))
        else:
            return False
        if absolute:
            return bool(self._regex.fullmatch(target))
        base = posixpath.normpath(action.cwd) if action.cwd else None
        if base is None:
            # an absolute path, a relative pattern and no cwd: a deny still matches its tail
            return loose and isinstance(self._regex, PathGlob) and \
                self._regex.anywhere().fullmatch(target)
        relative = posixpath.relpath(target, base)
        if relative.startswith(".."):
            return False
        return bool(self._regex.fullmatch(relative))


def _bare(tool: str) -> Pattern:
    if tool.lower() in SHELL_NAMES:
        return Pattern("Bash", "Bash", "shell", frozenset({SHELL}), None, None, None)
    if "*" in tool:
        return Pattern(tool, tool, "tool", frozenset(), None, None, None)
    keys = FAMILIES.get(tool, frozenset({tool}))
    kind = "path" if tool in FAMILIES else "domain" if tool == "WebFetch" else "tool"
    return Pattern(tool, tool, kind, keys, None, None, None)


def _shell(spec: str) -> Pattern:
    body = spec[:-2] + " *" if spec.endswith(":*") else spec
    if body.strip() in ("*", ""):
        return Pattern("Bash(*)", "Bash", "shell", frozenset({SHELL}), "*", None, None)
    open_end = body.endswith(" *")
    stem = body[:-2] if open_end else body
    first_word = stem.split(" ", 1)[0]
    first = first_word if first_word and "*" not in first_word else None
    return Pattern(f"Bash({spec})", "Bash", "shell", frozenset({SHELL}), spec, first,
                   Wildcard(tuple(stem.split("*")), open_end))


@dataclasses.dataclass(frozen=True, slots=True)
class Wildcard:
    """A shell pattern's text: literal pieces between `*`s, matched without backtracking
    (each piece found leftmost in turn), so no pattern can make a match slow."""

    pieces: tuple[str, ...]
    open_end: bool
    """Ends in ` *`: the text may stop before that space (`npm test` meets `npm test *`)."""

    def fullmatch(self, text: str) -> bool:
        """True when the whole text matches."""
        if self.open_end:
            stem = self.pieces
            if _glob_match(stem, text):
                return True
            return _glob_match((*stem[:-1], stem[-1] + " ", ""), text)
        return _glob_match(self.pieces, text)


def _glob_match(pieces: tuple[str, ...], text: str) -> bool:
    if len(pieces) == 1:
        return text == pieces[0]
    first, *middle, last = pieces
    if not text.startswith(first) or len(text) < len(first) + len(last):
        return False
    at, end = len(first), len(text) - len(last)
    if not text.endswith(last):
        return False
    for piece in middle:
        found = text.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def _path(tool: str, spec: str) -> Pattern:
    if spec in ("*", "**"):
        return Pattern(f"{tool}({spec})", tool, "path", FAMILIES[tool], spec, None,
                       PathGlob(("**",)))
    glob = spec
    if glob.startswith("//"):
        glob = glob[1:]
    elif glob.startswith("~/"):
        glob = os.path.expanduser("~") + glob[1:]
    elif glob.startswith("./"):
        glob = glob[2:]
    elif glob.startswith("/"):
        glob = glob[1:]  # relative to the project: the action's working directory
    if ".." in glob.split("/"):
        raise BadRequest(f"rule pattern {tool}({spec}): '..' is not allowed in a path pattern")
    if spec.count("*") > MAX_WILDCARDS:
        raise BadRequest(f"rule pattern {tool}({spec}): more than {MAX_WILDCARDS} wildcards")
    anywhere = "/" not in glob.rstrip("/")
    matcher = PathGlob(tuple((glob.rstrip("/") + ("/**" if glob.endswith("/") else ""))
                             .split("/")))
    if anywhere and not glob.startswith("/"):
        matcher = matcher.anywhere()
    head = glob.lstrip("/").split("/", 1)[0]
    first = None
    if not anywhere and head and not any(c in head for c in "*?["):
        first = "/" + head if glob.startswith("/") else head
    return Pattern(f"{tool}({spec})", tool, "path", FAMILIES[tool], spec, first, matcher)


@dataclasses.dataclass(frozen=True, slots=True)
class PathGlob:
    """A path pattern cut at its slashes: `**` is any number of directories (at the end, at
    least one name: `docs/**` is what is inside docs), each other segment a shell glob of one
    name (`fnmatch`, which never backtracks far). Matching is a table over pattern and path
    segments, so no pattern can make it slow."""

    segments: tuple[str, ...]

    def fullmatch(self, path: str) -> bool:
        """True when the whole path matches."""
        names = path.split("/")
        pattern = self.segments
        # ok[j]: pattern[i:] matches names[j:], for the i of the current pass (from the end)
        ok = [False] * len(names) + [True]
        for i in range(len(pattern) - 1, -1, -1):
            segment = pattern[i]
            if segment == "**" and i == len(pattern) - 1:
                ok = [j < len(names) for j in range(len(names) + 1)]
            elif segment == "**":
                for j in range(len(names) - 1, -1, -1):
                    ok[j] = ok[j] or ok[j + 1]
            else:
                ok = [j < len(names) and ok[j + 1] and fnmatch.fnmatchcase(names[j], segment)
                      for j in range(len(names) + 1)]
        return ok[0]

    def anywhere(self) -> PathGlob:
        """The same pattern, matching at any depth (its end matching the path's end)."""
        return PathGlob(("**", *self.segments))


def _domain(spec: str) -> Pattern:
    kind, colon, domain = spec.partition(":")
    if not colon or kind != "domain":
        raise BadRequest(f"rule pattern WebFetch({spec}): write WebFetch(domain:example.com)")
    domain = domain.strip().lower().rstrip(".")
    if domain == "*":
        return Pattern("WebFetch(domain:*)", "WebFetch", "domain", frozenset({"WebFetch"}),
                       "domain:*", None, re.compile(".*"))
    subdomains = domain.startswith("*.")
    name = domain[2:] if subdomains else domain
    if not re.fullmatch(r"[a-z0-9]([a-z0-9\-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]*[a-z0-9])?)*", name):
        raise BadRequest(f"rule pattern WebFetch({spec}): {domain!r} is not a domain name")
    regex = (r"(?:[^.]+\.)*" if subdomains else "") + re.escape(name)
    return Pattern(f"WebFetch(domain:{domain})", "WebFetch", "domain", frozenset({"WebFetch"}),
                   f"domain:{domain}", name, re.compile(regex))


def index_words(action: Action) -> tuple[list[str], bool]:
    """What a non-shell action is about, as `Pattern.first` spells it, for the index: the
    path's first directory (relative to the cwd, and absolute), or the host and each of its
    parent domains. The flag is True when a relative path rule could match anywhere in the
    path (an absolute path, no cwd): then a deny must be looked for in every path rule."""
    path = action.path
    if path is not None:
        if not posixpath.isabs(path) and not action.cwd:
            return [posixpath.normpath(path).split("/", 1)[0]], False
        target = posixpath.normpath(posixpath.join(action.cwd or "/", path))
        words = ["/" + target.lstrip("/").split("/", 1)[0]]
        if action.cwd:
            relative = posixpath.relpath(target, posixpath.normpath(action.cwd))
            words.append(relative.split("/", 1)[0])
        return words, not action.cwd
    host = _host(action.url)
    if host is not None:
        labels = host.split(".")
        return [".".join(labels[i:]) for i in range(len(labels))], False
    return [], False


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None
