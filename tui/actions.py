"""An action rendered for a person: a shell command as code, a file edit as a diff, a URL.

Plain functions from an `Action` to styled text, shared by the prompt bar, the detail
pane and the inbox, so the same action reads the same everywhere. Every field is drawn
`shown`: a control character in a command is a visible escape, never obeyed.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from textual.content import Content
from textual.highlight import highlight

from core.model import Action
from tui.view import shown, shown_line

CODE_STYLE = "on $boost"
"""Background of a shell command, so it stands apart from the question's prose."""

INPUT_CHARS = 2000
"""Characters of an unknown tool's input shown (as JSON); the rest is marked cut."""

SESSION_CHARS = 8
"""Characters of an agent's session id shown in the inbox."""


def inbox_line(action: Action) -> Content:
    """`agent · session(short) · tool  summary`: who asks to do what, on one line."""
    who = [action.agent]
    if action.session:
        short = action.session[:SESSION_CHARS]
        who.append(short + ("…" if len(action.session) > SESSION_CHARS else ""))
    who.append(action.tool)
    summary_style = CODE_STYLE if action.command is not None else ""
    return Content.assemble((shown_line(" · ".join(who)), "bold"), "  ",
                            (shown_line(action.summary), summary_style))


def header(action: Action) -> Content:
    """`agent · tool  in CWD`: who asks, with which tool, where."""
    parts: list[str | tuple[str, str]] = [
        (shown_line(f"{action.agent} · {action.tool}"), "bold")]
    if action.cwd:
        parts += [("  in ", "$text-muted"), (shown_line(action.cwd), "$text-muted")]
    return Content.assemble(*parts)


def render(action: Action, *, indent: str = "", with_header: bool = True) -> Content:
    """The action in full: its header (unless shown elsewhere), then the command, the
    diff, the URL or the input."""
    lines = [header(action)] if with_header else []
    lines += _body(action)
    return Content("\n").join(Content(indent) + line for line in lines)


def _body(action: Action) -> list[Content]:
    command = action.command
    if command is not None:
        code = highlight(shown(command), language="bash")  # what is coloured is what is shown
        return [Content.assemble(("  " if n else "$ ", "bold $accent"), line).stylize(CODE_STYLE)
                for n, line in enumerate(code.split("\n"))]  # continuation lines unmarked
    tool = action.tool.lower()
    path = action.path
    if tool in ("edit", "multiedit", "write") and path is not None:
        path = shown_line(path)
        return [Content.styled(path, "bold underline"), *_diff(path, _changes(tool, action.input))]
    if action.url is not None:
        lines = [Content.styled(shown_line(action.url), "underline $accent")]
        prompt = action.input.get("prompt")
        if isinstance(prompt, str) and prompt:
            lines += [Content.styled(line, "$text-muted") for line in shown(prompt).splitlines()]
        return lines
    return [Content(line) for line in shown(_as_json(action.input)).splitlines()]


def _changes(tool: str, tool_input: dict[str, Any]) -> list[tuple[str, str]]:
    """(old, new) text pairs the edit makes; a write is new text replacing nothing."""
    if tool == "write":
        return [("", _text(tool_input.get("content")))]
    if tool == "multiedit":
        edits = tool_input.get("edits")
        pairs = edits if isinstance(edits, list) else []
        return [(_text(e.get("old_string")), _text(e.get("new_string")))
                for e in pairs if isinstance(e, dict)]
    return [(_text(tool_input.get("old_string")), _text(tool_input.get("new_string")))]


def _diff(path: str, changes: list[tuple[str, str]]) -> list[Content]:
    """A unified diff of each change, its added lines green and removed lines red."""
    out: list[Content] = []
    for old, new in changes:
        for line in difflib.unified_diff(
            shown(old).splitlines(), shown(new).splitlines(), fromfile=path, tofile=path,
            lineterm="", n=2
        ):
            if line.startswith(("---", "+++")):
                continue  # the path is shown above the diff once
            style = ("$success" if line.startswith("+") else "$error" if line.startswith("-")
                     else "$accent" if line.startswith("@@") else "")
            out.append(Content.styled(line, style))
    return out


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _as_json(value: object) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > INPUT_CHARS:
        text = text[:INPUT_CHARS] + f"\n… {len(text) - INPUT_CHARS} more characters"
    return text

