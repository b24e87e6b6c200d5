"""The MCP tools as data: their arguments (checked with msgspec), their JSON schemas, and
how a person's answer, a timeout or an abort reads as a tool result. No I/O, no SDK.

Two kinds of result. The tools of our own (`ask_human`, `request_approval`, ...) answer
one JSON object, as text and as structured content, always with a `status` and a
`message` that tells the model what to do next. `permission_prompt` answers Claude
Code's `--permission-prompt-tool` contract instead: one text block holding
`{"behavior": "allow", "updatedInput": {...}}` or `{"behavior": "deny", "message": ...}`,
and nothing else (Claude Code refuses a result that has structured content).

Nothing but a person's listed approving choice ever reads as an approval: a free-text
reply, a timeout, an abort, a cancelled question and every error deny.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.model import MAX_NAME, MAX_SUMMARY, MAX_TEXT, Action, Prompt, Verdict, summarize
from core.protocol import MAX_CHOICE, MAX_CHOICES, MAX_RESULT

ASK_HUMAN = "ask_human"
REQUEST_APPROVAL = "request_approval"
REPORT_PROGRESS = "report_progress"
START_SUBTASK = "start_subtask"
FINISH_SUBTASK = "finish_subtask"
PERMISSION_PROMPT = "permission_prompt"
"""Named in Claude Code as `mcp__taskdeck__permission_prompt` (server name "taskdeck")."""

MAX_WAIT = 7 * 86400
"""The longest `timeout_s` a question takes (the daemon's cap on any timeout)."""

_Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
_Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
_Tokens = Annotated[int, Meta(ge=0, le=2**53)]


class BadArguments(Exception):
    """A tool was called with arguments it does not take; the message says which."""


# ------------------------------------------------------------------ arguments


class _Args(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of one of our tools: unknown names are refused, so a typo is not ignored."""


class AskHuman(_Args):
    """Ask a person a question in taskdeck and wait for the answer.

    Blocks until somebody answers from the taskdeck dashboard or command line. Returns
    the answer, who gave it and any reason. `status` is "answered", or "timed_out",
    "aborted", "cancelled" or "unavailable" when nobody answered: then act without the
    answer and never take it as a yes. A free-text reply (`verdict` "replied") is guidance,
    not an approval. After "aborted", stop working: the person stopped this session.
    """

    question: Annotated[_Text, Meta(description="What to ask, in a sentence or two.")]
    choices: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=MAX_CHOICE)]],
        Meta(min_length=1, max_length=MAX_CHOICES,
             description='The answers offered, e.g. ["yes", "no"]; default approve / deny. '
                         "The person may always reply with free text instead."),
    ] | None = None
    timeout_s: Annotated[
        float, Meta(gt=0, le=MAX_WAIT, description="Give up after this many seconds.")
    ] | None = None
    subtask_id: Annotated[
        _Id, Meta(description="Ask on this sub-task (from start_subtask) instead of the session.")
    ] | None = None


class RequestApproval(_Args):
    """Ask a person in taskdeck for leave to do something, before doing it.

    `action` names what you want to do (a tool or operation, e.g. "deploy",
    "delete_branch"), `details` its parameters exactly as you would use them: the person
    sees both. Blocks until somebody decides. Go ahead only when `approved` is true;
    otherwise `status` says why ("denied" with a reason, "replied" with guidance to follow
    instead, "timed_out", "aborted", "cancelled", "unavailable").
    """

    action: Annotated[str, Meta(min_length=1, max_length=MAX_NAME,
                                description="What you want to do: a tool or operation name.")]
    details: Annotated[dict[str, Any], Meta(
        description="Its parameters, as you would use them (command, path, target...).")] = {}
    reason: Annotated[str, Meta(max_length=MAX_TEXT,
                                description="Why you want to do it, in a sentence.")] | None = None
    timeout_s: Annotated[
        float, Meta(gt=0, le=MAX_WAIT, description="Give up (not approved) after this many seconds.")
    ] | None = None
    subtask_id: Annotated[
        _Id, Meta(description="Ask on this sub-task (from start_subtask) instead of the session.")
    ] | None = None


class ReportProgress(_Args):
    """Show in taskdeck what you are doing now, and count the tokens you spent since the last report."""

    text: Annotated[_Text, Meta(description="One line: what you are doing now.")]
    prompt_tokens: Annotated[_Tokens, Meta(description="Prompt tokens spent since the last report.")] = 0
    completion_tokens: Annotated[
        _Tokens, Meta(description="Completion tokens spent since the last report.")
    ] = 0
    subtask_id: Annotated[
        _Id, Meta(description="Report on this sub-task instead of the session.")
    ] | None = None


class StartSubtask(_Args):
    """Show a step of your plan as a sub-task in taskdeck's tree; returns its `subtask_id`.

    End it with finish_subtask. Sub-tasks still open when the session ends fail.
    """

    description: Annotated[_Text, Meta(description="What this step does.")]
    parent_id: Annotated[
        _Id, Meta(description="Nest it under this sub-task (default: under the session).")
    ] | None = None


class FinishSubtask(_Args):
    """End a sub-task from start_subtask: with its `result`, or as failed with an `error`."""

    subtask_id: Annotated[_Id, Meta(description="The id start_subtask returned.")]
    result: Annotated[str, Meta(max_length=MAX_RESULT, description="What it achieved.")] | None = None
    error: Annotated[str, Meta(min_length=1, max_length=MAX_RESULT,
                               description="Why it failed (instead of a result).")] | None = None

    def __post_init__(self) -> None:
        if self.result is not None and self.error is not None:
            raise ValueError("give a result or an error, not both")


class PermissionPrompt(msgspec.Struct, kw_only=True):
    """Claude Code's permission prompt tool: a person in taskdeck allows or denies a tool call.

    Claude Code calls it itself (`--permission-prompt-tool
    mcp__taskdeck__permission_prompt`) when a tool call needs a decision; not for the model.
    """

    tool_name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME,
                                   description="The tool Claude Code asks to run.")]
    input: Annotated[dict[str, Any], Meta(description="The tool's input.")] = {}
    tool_use_id: Annotated[str, Meta(max_length=MAX_NAME,
                                     description="Claude Code's id of the call.")] | None = None


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the host sees it."""

    name: str
    args: type[msgspec.Struct]

    @property
    def description(self) -> str:
        paragraphs = inspect.cleandoc(self.args.__doc__ or "").split("\n\n")
        return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs)

    @property
    def input_schema(self) -> dict[str, Any]:
        """The arguments' JSON schema, inlined (no `$ref`: some hosts do not follow them)."""
        schema = msgspec.json.schema(self.args)
        body = dict(schema["$defs"][self.args.__name__])
        body.pop("title", None)
        body.pop("description", None)
        return body


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(ASK_HUMAN, AskHuman),
        ToolSpec(REQUEST_APPROVAL, RequestApproval),
        ToolSpec(REPORT_PROGRESS, ReportProgress),
        ToolSpec(START_SUBTASK, StartSubtask),
        ToolSpec(FINISH_SUBTASK, FinishSubtask),
        ToolSpec(PERMISSION_PROMPT, PermissionPrompt),
    )
}
"""Every tool, by name, in the order hosts list them."""


def parse(name: str, arguments: dict[str, Any] | None) -> msgspec.Struct:
    """The tool's arguments, checked.

    Raises:
        BadArguments: an unknown tool, a missing or unknown argument, a wrong type or range.
    """
    spec = TOOLS.get(name)
    if spec is None:
        raise BadArguments(f"no tool named {name[:MAX_NAME]!r} (tools: {', '.join(TOOLS)})")
    try:
        return msgspec.convert(arguments or {}, spec.args)
    except msgspec.ValidationError as exc:
        text = str(exc).replace("`$.", "`").replace(" - at `$`", "")
        raise BadArguments(f"{name}: {text}") from None


# ------------------------------------------------------------------ results


def _who(prompt: Prompt) -> str:
    return prompt.answered_by or "a person"


def answered(prompt: Prompt, *, approval: bool) -> dict[str, Any]:
    """The result of a question somebody answered.

    `approval` shapes it for `request_approval` (`approved`, and the verdict as `status`);
    otherwise for `ask_human` (`status` "answered", the verdict beside it).
    """
    verdict = prompt.verdict or Verdict.REPLIED
    who = _who(prompt)
    if verdict is Verdict.APPROVED:
        message = (f"{who} approved: go ahead." if approval
                   else f"{who} answered {prompt.answer!r}.")
    elif verdict is Verdict.DENIED:
        message = f"{who} denied" + (f": {prompt.reason}" if prompt.reason else "") + (
            ". Do not do it." if approval else ".")
    else:
        message = (f"{who} replied with text instead of choosing: follow it. "
                   + ("This is not an approval: do not go ahead as asked." if approval else ""))
    out: dict[str, Any] = {"status": verdict.value if approval else "answered"}
    if approval:
        out["approved"] = verdict is Verdict.APPROVED
    else:
        out["verdict"] = verdict.value
    out |= {"answer": prompt.answer, "answered_by": prompt.answered_by,
            "reason": prompt.reason, "prompt_id": prompt.id, "message": message.strip()}
    return out


class Unanswered:
    """Why a question got no answer: the `status` values a result carries then."""

    TIMED_OUT = "timed_out"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"


_NEXT = {
    Unanswered.TIMED_OUT: "Nobody answered in time. Take it as no answer, never as a yes.",
    Unanswered.ABORTED: "The person aborted this work in taskdeck: stop and do not go on "
                        "with it.",
    Unanswered.CANCELLED: "The question was closed before anyone answered. Take it as no "
                          "answer, never as a yes.",
    Unanswered.UNAVAILABLE: "taskdeck could not ask a person. Take it as no answer, never as "
                            "a yes.",
}


def unanswered(status: str, detail: str, *, approval: bool) -> dict[str, Any]:
    """The result of a question nobody answered (`status` one of `Unanswered`)."""
    out: dict[str, Any] = {"status": status}
    if approval:
        out["approved"] = False
    out |= {"detail": detail, "message": _NEXT[status]}
    return out


def what(action: Action) -> str:
    """An action in a question's words: its summary line, or its details when it has none
    of its own ("deploy: {"env": "prod"}")."""
    line = action.summary
    if line == summarize(action.tool, {}) and action.input:
        line = json.dumps(action.input, ensure_ascii=False)
        line = line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"
    return f"{action.tool}: {line}"


# ------------------------------------------------------- the permission prompt


def permission_question(tool: str, summary: str) -> str:
    """The prompt's text for one of Claude Code's tool calls."""
    text = f"Claude Code asks to run {tool}: {summary}"
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def allow(original_input: dict[str, Any]) -> dict[str, Any]:
    """Claude Code's allow: the tool runs with its input as it asked."""
    return {"behavior": "allow", "updatedInput": original_input}


def deny(message: str, *, interrupt: bool = False) -> dict[str, Any]:
    """Claude Code's deny: the model reads `message` as the tool's error; `interrupt` stops the run."""
    out: dict[str, Any] = {"behavior": "deny", "message": message or "denied in taskdeck"}
    if interrupt:
        out["interrupt"] = True
    return out


def permission(prompt: Prompt, original_input: dict[str, Any]) -> dict[str, Any]:
    """A person's answer as Claude Code's decision: only a listed approving choice allows.

    A denial's reason, or a free-text reply, reaches the model verbatim as the deny's text.
    """
    verdict = prompt.verdict
    if verdict is Verdict.APPROVED:
        return allow(original_input)
    if verdict is Verdict.REPLIED:
        return deny(prompt.answer or "")
    return deny(prompt.reason or f"denied in taskdeck by {_who(prompt)}")
