"""`taskdeck hook claude`: Claude Code runs this for its hooks, one JSON object on stdin.

Two halves. The mapping (`parse`, `plan`, `decided`, `fail_safe`, `stopped`) is pure:
hook input in, what to do or what to print out, so it is tested as tables of cases. The
runner (`run`) carries a plan out against the daemon through `SyncClient` only.

Claude Code's hooks fail open: a hook that errs, prints nothing or runs too long leaves
the decision to Claude Code's own permission flow, which runs read-only commands unasked.
So every error of ours ends one of two deliberate ways: a PermissionRequest prints
nothing (Claude Code's own dialog then asks the person), a gated PreToolUse prints a
deny naming the cause. Nothing but a person's listed choice ever prints an allow.

The tree: one root task per session (key "claude:SESSION_ID", opened by the first
prompt, described by the cwd and that prompt), a child per sub-agent ("claude:SESSION_ID/
AGENT_ID"), progress the last tool run, finished on SessionEnd (result: its reason) or
SubagentStop. Each event re-opens its task by key, which renews the lease; the lease is
the idle period (`--idle`), so a session that goes quiet without a SessionEnd ends
failed as lost ("no word from its reporter for 30 min: its lease lapsed").

Settings, with the hook timeout above the decision's `--timeout` (590 s by default):

    {"hooks": {"PermissionRequest": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude", "timeout": 600}]}],
     "PreToolUse": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude --gate Bash", "timeout": 600}]}],
     "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command",
       "command": "taskdeck hook claude"}]}], ...}}
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import msgspec
from msgspec import Meta

from core.model import MAX_NAME, MAX_TEXT, Action, Prompt, Task, Verdict, summarize
from core.text import printable

AGENT = "claude"
"""The agent name of every task and action this bridge makes."""

OBSERVED = frozenset({
    "SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolBatch",
    "Notification", "Stop", "SubagentStart", "SubagentStop", "SessionEnd",
})
"""Events that only update the tree (PreToolUse too, for a tool not gated)."""

PERMISSION = "PermissionRequest"
PRE_TOOL = "PreToolUse"
EVENTS = OBSERVED | {PERMISSION}

MAX_INPUT = 1 << 20
"""Bytes of stdin read: more is refused as bad input (an action's input caps at 256 KiB)."""

DEFAULT_IDLE_MINUTES = 30.0
DEFAULT_TIMEOUT = 590.0
"""Seconds a decision waits for a person: under the 600 s hook timeout Claude Code
defaults to, so the prompt closes (timed out) and the deny is printed before the
hook itself is killed."""


class BadInput(Exception):
    """Stdin is not one hook event this bridge understands."""


_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]


class Hook(msgspec.Struct, kw_only=True, frozen=True):
    """The fields of a hook event this bridge reads; Claude Code sends more (ignored)."""

    hook_event_name: str
    session_id: _Name
    cwd: str = ""
    agent_id: _Name | None = None
    agent_type: str | None = None
    tool_name: _Name | None = None
    tool_input: dict[str, Any] | None = None
    permission_suggestions: Any = None
    """Rules Claude Code proposes (read leniently: a shape we do not know is left out)."""
    tool_calls: list[Any] | None = None
    prompt: str | None = None
    message: str | None = None
    reason: str | None = None
    last_assistant_message: str | None = None

    @property
    def root_key(self) -> str:
        return f"{AGENT}:{self.session_id}"

    @property
    def child_key(self) -> str | None:
        return None if self.agent_id is None else f"{self.root_key}/{self.agent_id}"


def parse(raw: bytes) -> Hook:
    """The hook event on stdin, checked.

    Raises:
        BadInput: too big, not JSON, wrong types, or an event this bridge does not know.
    """
    if len(raw) > MAX_INPUT:
        raise BadInput(f"the hook input is over {MAX_INPUT} bytes")
    try:
        hook = msgspec.json.decode(raw, type=Hook)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise BadInput(f"the hook input is not a hook event: {exc}") from None
    if hook.hook_event_name not in EVENTS:
        raise BadInput(f"unknown hook event {hook.hook_event_name[:MAX_NAME]!r}")
    if hook.hook_event_name == PERMISSION and hook.tool_name is None:
        raise BadInput("a PermissionRequest without tool_name")
    return hook


def event_of(raw: bytes) -> str | None:
    """The event a hook input names, read leniently (for input `parse` refused)."""
    if len(raw) > MAX_INPUT:
        return None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    name = data.get("hook_event_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def gated(event: str | None, tool: str | None, gates: Iterable[str]) -> bool:
    """True when this event waits for a decision: a PermissionRequest, or PreToolUse of a gated tool."""
    return event == PERMISSION or (event == PRE_TOOL and tool is not None and tool in gates)


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Plan:
    """What one hook event does to the session's tree."""

    root_description: str
    child_description: str | None = None
    """Set when the event happens in a sub-agent: it works on the sub-agent's child task."""
    progress: str | None = None
    finish: str | None = None
    """The result to end the target task with (SessionEnd, SubagentStop), else None."""
    only_if_live: bool = False
    """Open nothing new: a SessionEnd after the session was lost ends nothing, and a
    SessionStart leaves the opening to the first prompt, whose text the root's
    description carries."""
    ask: Action | None = None


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan(hook: Hook, gates: Iterable[str] = ()) -> Plan:
    """What a hook event does: which task (root or sub-agent child), its progress, end or question."""
    event = hook.hook_event_name
    root = _clip(f"{hook.cwd or '?'}: {hook.prompt}" if event == "UserPromptSubmit" and hook.prompt
                 else hook.cwd or f"Claude Code session {hook.session_id}")
    child = None
    if hook.agent_id is not None:
        child = _clip(f"{hook.agent_type or 'sub-agent'} {hook.agent_id}")
    if event == "SessionStart":  # the root opens with the first prompt, to carry it
        return Plan(root, only_if_live=True)
    if event == "SessionEnd":
        return Plan(root, finish=_clip(hook.reason or "ended"), only_if_live=True)
    if event == "SubagentStop" and child is not None:
        return Plan(root, child, finish=hook.last_assistant_message or "done")
    if gated(event, hook.tool_name, gates):
        assert hook.tool_name is not None
        action = Action(agent=AGENT, tool=hook.tool_name, input=hook.tool_input or {},
                        cwd=hook.cwd[:MAX_TEXT] or None, session=hook.session_id,
                        suggestions=suggested_rules(hook.permission_suggestions))
        return Plan(root, child, ask=action)
    return Plan(root, child, progress=_progress(hook))


def suggested_rules(suggestions: Any) -> list[str]:
    """The allow rules Claude Code proposes (`permission_suggestions` of type addRules), as
    patterns: `{"toolName": "Bash", "ruleContent": "npm test *"}` is `Bash(npm test *)`.
    Anything else in the list is left out (a suggestion never decides anything itself)."""
    found: list[str] = []
    for suggestion in suggestions if isinstance(suggestions, list) else ():
        if not isinstance(suggestion, dict) or suggestion.get("type") != "addRules" \
                or suggestion.get("behavior", "allow") != "allow":
            continue
        rules = suggestion.get("rules")
        for rule in rules if isinstance(rules, list) else ():
            tool = rule.get("toolName") if isinstance(rule, dict) else None
            content = rule.get("ruleContent") if isinstance(rule, dict) else None
            if not isinstance(tool, str) or not tool:
                continue
            pattern = f"{tool}({content})" if isinstance(content, str) and content else tool
            if len(pattern) <= MAX_TEXT and pattern not in found:
                found.append(pattern)
    return found[:16]


def _progress(hook: Hook) -> str | None:
    """The progress line an observed event sets (None: leave it)."""
    event = hook.hook_event_name
    if event == "PostToolUse" and hook.tool_name:
        return _clip(_ran(hook.tool_name, hook.tool_input))
    if event == "PostToolBatch" and hook.tool_calls:
        last = hook.tool_calls[-1]
        if isinstance(last, dict) and isinstance(last.get("tool_name"), str):
            given = last.get("tool_input")
            return _clip(_ran(last["tool_name"], given if isinstance(given, dict) else None))
    if event == "UserPromptSubmit" and hook.prompt:
        return _clip(f"prompt: {hook.prompt}")
    if event == "Notification" and hook.message:
        return _clip(hook.message)
    if event == "Stop":
        return "turn ended: waiting for the next prompt"
    if event == "SubagentStart":
        return "started"
    return None


def _ran(tool: str, given: dict[str, Any] | None) -> str:
    """"Bash: npm test": the tool and what it acted on."""
    line = summarize(tool, given or {})
    return tool if line == summarize(tool, {}) else f"{tool}: {line}"


def question(action: Action) -> str:
    """The text of the prompt a decision asks."""
    return _clip(f"Claude Code asks to run {action.tool}: {action.summary}")


# ------------------------------------------------------------------ outputs


def _decision(event: str, allow: bool, message: str = "", interrupt: bool = False) -> dict[str, Any]:
    if event == PRE_TOOL:
        out: dict[str, Any] = {"hookEventName": PRE_TOOL,
                               "permissionDecision": "allow" if allow else "deny"}
        if message:
            out["permissionDecisionReason"] = message
        return {"hookSpecificOutput": out}
    decision: dict[str, Any] = {"behavior": "allow" if allow else "deny"}
    if not allow:
        decision["message"] = message
    if interrupt:
        decision["interrupt"] = True
    return {"hookSpecificOutput": {"hookEventName": PERMISSION, "decision": decision}}


def decided(event: str, prompt: Prompt) -> dict[str, Any]:
    """The answer to print for a person's answer: only a listed approving choice allows.

    A denial's reason, or a free-text reply, reaches the model verbatim as the deny's text.
    """
    verdict = prompt.verdict
    if verdict is Verdict.APPROVED:
        return _decision(event, True)
    if verdict is Verdict.REPLIED:
        return _decision(event, False, prompt.answer or "")
    who = prompt.answered_by or "a person"
    return _decision(event, False, prompt.reason or f"denied in taskdeck by {who}")


def stop_reason(task: Task) -> str:
    """"aborted in taskdeck by NAME", from an aborted task's error ("aborted by NAME")."""
    error = task.error or "aborted"
    return error.replace("aborted by", "aborted in taskdeck by", 1) if "aborted by" in error \
        else f"aborted in taskdeck: {error}"


def stopped(event: str, reason: str) -> dict[str, Any]:
    """The answer of any hook of an aborted session: stop the agent (and deny, if asked)."""
    out: dict[str, Any] = {"continue": False, "stopReason": reason}
    if event in (PRE_TOOL, PERMISSION):
        out |= _decision(event, False, reason, interrupt=True)
    return out


def fail_safe(event: str | None, is_gated: bool, cause: str) -> dict[str, Any] | None:
    """What an error prints: a gated PreToolUse denies naming the cause; everything else
    prints nothing (a PermissionRequest then goes to Claude Code's own dialog)."""
    if event == PRE_TOOL and is_gated:
        return _decision(PRE_TOOL, False, f"taskdeck could not ask a person: {cause}")
    return None


# ------------------------------------------------------------------ the runner


class _Ended(BaseException):
    """A signal ended the hook (Claude Code kills a hook that runs past its timeout)."""


def run(
    raw: bytes,
    *,
    gates: Iterable[str] = (),
    idle_minutes: float = DEFAULT_IDLE_MINUTES,
    timeout: float = DEFAULT_TIMEOUT,
    runtime_dir: Path | str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Handle one hook event: print its answer (or nothing) on `out`, problems as one
    line on `err`. Always exits 0: Claude Code reads the answer, never the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    gates = frozenset(gates)

    def say(answer: dict[str, Any] | None) -> None:
        if answer is not None:
            out.write(msgspec.json.encode(answer).decode() + "\n")
            out.flush()

    def complain(cause: str) -> None:
        err.write(f"taskdeck hook claude: {printable(cause)}\n")
        err.flush()

    try:
        hook = parse(raw)
    except BadInput as exc:
        complain(str(exc))
        named = event_of(raw)
        # Unreadable input may still be a gated tool call: with gates set, deny it.
        if named in (PRE_TOOL, None) and gates:
            say(fail_safe(PRE_TOOL, True, str(exc)))
        return 0
    event = hook.hook_event_name
    is_gated = gated(event, hook.tool_name, gates)
    with _signals_end():
        try:
            say(_carry_out(hook, plan(hook, gates), idle_minutes * 60, timeout, runtime_dir))
        except _Ended as exc:
            complain(f"interrupted by {exc}; nothing was approved")
            say(fail_safe(event, is_gated, f"interrupted by {exc}"))
        except Exception as exc:  # noqa: BLE001 - every error must end in a safe answer
            cause = _cause(exc)
            complain(cause)
            say(fail_safe(event, is_gated, cause))
    return 0


def _cause(exc: Exception) -> str:
    from core.errors import TaskdeckError

    if isinstance(exc, TaskdeckError):
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {exc}"


class _signals_end:
    """TERM, HUP and INT raise `_Ended` in the main thread, once; later ones are ignored."""

    NAMES = ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT")

    def __enter__(self) -> None:
        self.saved: dict[int, Any] = {}

        def ended(signum: int, frame: object) -> None:
            for sig in self.saved:
                signal.signal(sig, signal.SIG_IGN)
            raise _Ended(signal.Signals(signum).name)

        for name in self.NAMES:
            sig = getattr(signal, name, None)
            if sig is not None:
                self.saved[sig] = signal.signal(sig, ended)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _carry_out(
    hook: Hook, todo: Plan, lease: float, timeout: float, runtime_dir: Path | str | None
) -> dict[str, Any] | None:
    """Carry a plan out on the daemon; the answer to print, or None."""
    from core.client import SyncClient

    event = hook.hook_event_name
    with SyncClient(runtime_dir, client_name="hook-claude", retries=2) as client:
        newest = _newest(client, {hook.root_key, hook.child_key} - {None})
        for task in newest.values():
            if task.end_reason is not None and task.end_reason.value == "aborted":
                return stopped(event, stop_reason(task))
        if todo.only_if_live:
            live = newest.get(hook.root_key)
            if live is None or live.status.is_ended:
                return None
        target = client.open_task(todo.root_description, agent=AGENT, lease=lease,
                                  key=hook.root_key)
        if todo.child_description is not None:
            target = client.open_task(todo.child_description, agent=AGENT, lease=lease,
                                      parent_id=target.id, key=hook.child_key)
        if todo.ask is not None:
            return _decide(client, target, event, todo.ask, timeout)
        if todo.progress is not None:
            target.progress(todo.progress)
        if todo.finish is not None:
            from core.protocol import MAX_RESULT

            target.finish(todo.finish[:MAX_RESULT])
        return None


def _newest(client: Any, keys: set[str | None]) -> dict[str, Task]:
    """The newest task opened with each key, ended or not (the daemon looks each key up)."""
    found: dict[str, Task] = {}
    for key in keys:
        if key is not None:
            for task in client.list_tasks(key=key, limit=1):
                found[key] = task
    return found


def _decide(client: Any, target: Any, event: str, action: Action, timeout: float) -> dict[str, Any]:
    """Ask a person on the task and turn the answer into the hook's answer.

    A timeout is the prompt's own (the daemon closes it as timed out). Any other way the
    wait ends early (a signal, an error) closes the still pending prompt with a deny
    whose reason says why, so nobody answers a question no one waits for.
    """
    from core.errors import InvalidState

    asked: list[Prompt] = []
    try:
        prompt = target.ask(question(action), action=action, timeout=timeout,
                            on_asked=asked.append)
    except InvalidState:
        task = target.task.task
        if task.end_reason is not None and task.end_reason.value == "aborted":
            return stopped(event, stop_reason(task))
        raise
    except (Exception, _Ended) as exc:
        if asked:
            _close(client, asked[0], exc)
        raise
    return decided(event, prompt)


def _close(client: Any, prompt: Prompt, exc: BaseException) -> None:
    """Deny a pending prompt the hook stops waiting on (best effort: it may be closed)."""
    from core.errors import TaskdeckError

    why = f"interrupted by {exc}" if isinstance(exc, _Ended) else _cause(exc)  # type: ignore[arg-type]
    try:
        client.answer(prompt.id, "deny", reason=f"the hook stopped waiting: {why}",
                      by="taskdeck hook claude")
    except TaskdeckError:
        pass


def main(args: Any) -> int:
    """`taskdeck hook claude`: stdin in, answer out."""
    raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    return run(raw, gates=args.gate or (), idle_minutes=args.idle, timeout=args.timeout,
               runtime_dir=args.runtime_dir)

