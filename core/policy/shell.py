"""A shell command cut into the simple commands it runs, with tree-sitter-bash, for rule matching.

Why a parser: `npm test && curl x | sh` runs three commands, `echo $(rm -rf ~)` two, and
a regex over the text cannot tell. tree-sitter-bash (maintained, prebuilt wheels) gives the
syntax tree; every command node anywhere in it, inside lists, pipelines, subshells, `$(...)`,
backticks, process substitutions and control structures, is one `Part`.

Each part is seen two ways, because allowing and forbidding need opposite caution:

* `exact`: the words as written (quotes kept), environment prefix included. Allow rules
  match this: `FOO=1 npm test` or `npm "test"` is not what `Bash(npm test *)` allowed.
* `loose`: the words unquoted, without the environment prefix, the command's directory or
  wrappers such as `sudo`, `env`, `command`, `exec`. Deny and ask rules match this (and
  `exact`): `/bin/rm -rf /`, `"rm" -rf /` and `sudo rm -rf /` all meet `Bash(rm *)`.

A command the parser cannot read for sure (a syntax error, a command name that is itself
an expansion such as `$CMD`, output redirected to a file) is marked, and no rule allows it.
`bash -c '...'`, `sh -c` and `eval` are parsed again, so their inner commands are parts too.
"""

from __future__ import annotations

import functools
import posixpath
import shlex
from typing import NamedTuple

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

_PART_NODES = frozenset({"command", "declaration_command", "unset_command", "test_command"})
"""Node types that run something: each becomes one part."""

_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "-S"}),
    "nice": frozenset({"-n"}),
    "timeout": frozenset({"-s", "-k"}),
    "xargs": frozenset({"-I", "-n", "-P", "-d", "-L", "-s", "-a", "-E"}),
    **{name: frozenset() for name in ("command", "builtin", "exec", "nohup", "time", "stdbuf",
                                      "setsid")},
}
"""Commands that run the command after them, with their options that take a value: the
loose view looks past them (`sudo -u root rm` runs `rm`)."""

_INNER_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})
"""Shells whose `-c STRING` is parsed as a command of its own."""

_QUIET_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
"""Redirection targets that write no file."""

MAX_DEPTH = 4
"""How deep `bash -c` inside `bash -c` is followed; deeper is unsure."""


class Part(NamedTuple):
    """One simple command of a shell line."""

    exact: str
    """The words as written, one space apart (what allow rules match)."""
    loose: str
    """The words unquoted, without environment prefix, directory or wrapper (deny, ask)."""


class Reading(NamedTuple):
    """What a shell line runs."""

    parts: tuple[Part, ...]
    sure: bool
    """False when any part, or the line as a whole, could not be read for sure."""
    why: str = ""
    """Why not sure, in a person's words."""


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


CACHED_LENGTH = 4096
"""Commands up to this many characters are kept in the cache (4,096 of them): agents repeat
their commands, and a cache of long ones could hold a gigabyte (inputs go up to 256 KiB)."""


def read(command: str) -> Reading:
    """Cut `command` into its parts (remembered for commands of ordinary length)."""
    return _cached(command) if len(command) <= CACHED_LENGTH else _read(command, 0)


@functools.lru_cache(maxsize=4096)
def _cached(command: str) -> Reading:
    return _read(command, 0)


def forget() -> None:
    """Empty the cache (the benchmark times commands never seen)."""
    _cached.cache_clear()


def _read(command: str, depth: int) -> Reading:
    source = command.encode()
    tree = _parser().parse(source)
    parts: list[Part] = []
    whys: list[str] = []
    if tree.root_node.has_error:
        whys.append("the shell parser found a syntax error")
    _walk(tree.root_node, parts, whys, depth)
    if not parts and not whys:
        whys.append("it runs no command")
    return Reading(tuple(parts), not whys, "; ".join(whys))


def _walk(node: Node, parts: list[Part], whys: list[str], depth: int) -> None:
    """Collect parts depth first: a part's own substitutions come after it."""
    if node.type in _PART_NODES:
        parts.extend(_part(node, whys, depth))
    elif node.type == "redirected_statement":
        for child in node.children:
            if child.type.endswith("redirect") and _writes_file(child):
                whys.append(f"it writes a file ({_text(child)})")
    elif node.type == "function_definition":
        whys.append("it defines a function")
    for child in node.children:  # a part's words hold parts only inside substitutions
        _walk(child, parts, whys, depth)


def _writes_file(redirect: Node) -> bool:
    if redirect.type != "file_redirect":
        return False  # heredocs and herestrings feed input
    operator = next((c.type for c in redirect.children if c.type in
                     (">", ">>", "&>", "&>>", ">|", "<", ">&", "<&", "<>", ">&-", "<&-")), "")
    if operator in ("<", "<&", "<&-", ">&-"):
        return False
    destination = redirect.child_by_field_name("destination") or redirect.children[-1]
    target = _unquote(destination)
    if operator in (">&", "<&") and (target.isdigit() or target == "-"):
        return False  # 2>&1: a descriptor, not a file
    return target not in _QUIET_TARGETS


def _part(node: Node, whys: list[str], depth: int) -> list[Part]:
    """One command node as a part, then the parts of a `bash -c` or `eval` it runs."""
    if node.type != "command":  # export, unset, [[ ]]: their words as they stand
        text = " ".join(_text(c) for c in node.children)
        return [Part(text, " ".join(_unquote(c) for c in node.children))]
    env = [c for c in node.children if c.type == "variable_assignment"]
    name = node.child_by_field_name("name")
    words = [c for c in node.children
             if c.type != "variable_assignment" and not c.type.endswith("redirect")]
    exact = " ".join(_text(c) for c in [*env, *words])
    if name is None or not _literal(name):
        whys.append(f"its command name is not plain text ({_text(name) if name else exact})")
    argv = _unwrap([_unquote(c) for c in words])
    if argv:
        argv[0] = posixpath.basename(argv[0]) or argv[0]
    return [Part(exact, " ".join(argv)), *_inner(argv, whys, depth)]


def _unwrap(argv: list[str]) -> list[str]:
    """The command a wrapper runs: `sudo -u x rm a` -> `rm a`, `env A=1 rm a` -> `rm a`."""
    while argv and (wrapper := posixpath.basename(argv[0])) in _WRAPPERS:
        valued, rest = _WRAPPERS[wrapper], argv[1:]
        while rest and (rest[0].startswith("-") or "=" in rest[0] or rest[0][:1].isdigit()):
            rest = rest[2:] if rest[0] in valued else rest[1:]
        argv = rest
    return argv


def _inner(argv: list[str], whys: list[str], depth: int) -> list[Part]:
    """Parts of what a command runs in turn: a shell's `-c` script (`-lc` too), `eval`'s
    words, `find -exec`'s command. A shell that reads its script from its input (`| sh`,
    `bash <<EOF`) runs what no parser sees: not sure."""
    if not argv:
        return []
    name = argv[0]
    if name == "eval":
        script = " ".join(argv[1:])
    elif name in _INNER_SHELLS:
        found = _shell_script(argv[1:])
        if found is None:
            whys.append(f"{name} reads its script from its input")
            return []
        if found == "":
            return []  # runs a script file: its own command, matched as written
        script = found
    elif name == "find":
        return [part for command in _find_exec(argv[1:])
                for part in _read(command, depth + 1).parts]
    else:
        return []
    if depth >= MAX_DEPTH:
        whys.append("shells nest too deeply")
        return []
    reading = _read(script, depth + 1)
    if not reading.sure:
        whys.append(reading.why)
    return list(reading.parts)


def _shell_script(args: list[str]) -> str | None:
    """The script a shell's arguments give it: the `-c` string, "" for a script file, or
    None when it reads its input (no operand, `-s`, or `-`)."""
    for i, arg in enumerate(args):
        if arg == "--":
            rest = args[i + 1:]
            return "" if rest and rest[0] != "-" else None
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            if "c" in arg[1:]:
                return args[i + 1] if i + 1 < len(args) else None
            if "s" in arg[1:]:
                return None
            continue
        if arg.startswith("--"):
            continue
        return "" if arg != "-" else None
    return None


def _find_exec(args: list[str]) -> list[str]:
    """The commands `find ... -exec CMD {} ;` (and -execdir, -ok, -okdir) runs."""
    commands, i = [], 0
    while i < len(args):
        if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(args)) if args[j] in (";", "+")), len(args))
            words = args[i + 1:end]
            if words:
                commands.append(shlex.join(words))
            i = end
        i += 1
    return commands


def _literal(node: Node) -> bool:
    """True when the node's value is known without running anything (no expansion)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type in ("simple_expansion", "expansion", "command_substitution",
                            "process_substitution", "arithmetic_expansion"):
            return False
        stack.extend(current.children)
    return True


def _text(node: Node) -> str:
    return (node.text or b"").decode(errors="replace")


def _unquote(node: Node) -> str:
    """A word's value as the shell would see it, best effort (quotes and escapes removed)."""
    kind = node.type
    text = _text(node)
    if kind == "raw_string":
        return text[1:-1]
    if kind == "string":
        return "".join(_text(c) if c.type != '"' else "" for c in node.children)
    if kind == "concatenation":
        return "".join(_unquote(c) for c in node.children)
    if kind == "word" or kind == "command_name":
        if kind == "command_name" and node.children:
            return "".join(_unquote(c) for c in node.children)
        out, escaped = [], False
        for char in text:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return text
