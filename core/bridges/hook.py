"""One hook bridge for every agent whose hooks speak Claude Code's JSON: `taskdeck hook AGENT`.

Two halves. The mapping (`parse`, `plan`, `decided`, `fail_safe`, `stopped`) is pure:
hook input in, what to do or what to print out, so it is tested as tables of cases. The
runner (`run`) carries a plan out against the daemon through the client library only.
What differs between agents is data, a `Dialect` (claude.py, codex.py): the agent's
name, the events it sends, whether PreToolUse may allow, whether a decision may also
stop the agent.

Agents' hooks fail open: a hook that errs, prints nothing or runs too long leaves the
decision to the agent's own permission flow, which runs read-only commands unasked.
So every error of ours ends one of two deliberate ways: a PermissionRequest prints
nothing (the agent's own dialog then asks the person), a gated PreToolUse prints a deny
naming the cause. Nothing but a person's listed choice ever prints an allow.

The tree: one root task per session (key "AGENT:SESSION_ID"), a child per sub-agent
("AGENT:SESSION_ID/AGENT_ID"), progress the last tool run, finished on SessionEnd
(result: its reason) or SubagentStop. Each event re-opens its task by key, which renews
the lease; the lease is the idle period (`--idle`), so a session that goes quiet without
a SessionEnd ends failed as lost ("no word from its reporter for 30 min: its lease lapsed").

Answered in the agent: the agent's own dialog may decide before taskdeck does (Claude
Code then drops its hook). A hook waiting on a person holds a shared lock on its task's
file in the runtime dir (`waiters`); a later hook of the session that can take that lock
exclusively knows no hook waits on the task any more, and closes its still pending
questions as "answered in the agent". A prompt a live hook waits on is never closed so.
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

PERMISSION = "PermissionRequest"
PRE_TOOL = "PreToolUse"

SHARED_EVENTS = frozenset({
    "SessionStart", "UserPromptSubmit", PRE_TOOL, PERMISSION, "PostToolUse", "Stop",
    "SubagentStart", "SubagentStop", "SessionEnd",
})
"""The events Claude Code and Codex both send, with the same meaning."""

MAX_INPUT = 1 << 20
"""Bytes of stdin read: more is refused as bad input (an action's input caps at 256 KiB)."""

DEFAULT_IDLE_MINUTES = 30.0
DEFAULT_TIMEOUT = 590.0
"""Seconds a decision waits for a person: under the 600 s hook timeout Claude Code
defaults to, so the prompt closes (timed out) and the deny is printed before the
hook itself is killed."""

ANSWERED_IN_AGENT = "answered in the agent"
"""The answer recorded on a question the agent's own dialog decided first."""


@dataclass(frozen=True)
class Dialect:
    """What one agent's hooks send and accept; the rest of the bridge is shared."""

    agent: str
    """The agent name of every task and action ("claude", "codex"), and the keys' prefix."""
    title: str
    """How a person calls the agent: "Claude Code", "Codex"."""
    events: frozenset[str]
    """Every hook event the agent sends; any other is refused as bad input."""
    pre_tool_allows: bool = True
    """PreToolUse may print an allow. Codex refuses one: an approval there prints nothing."""
    decision_stops: bool = True
    """A decision's answer may also stop the agent (`continue: false`, `interrupt`).
    Codex refuses both on PreToolUse and PermissionRequest: it only gets the deny."""
    opens_on_start: bool = False
    """SessionStart opens the root. Claude Code leaves that to the first prompt, whose
    text the root's description then carries."""


class BadInput(Exception):
    """Stdin is not one hook event this bridge understands."""


_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]


class Hook(msgspec.Struct, kw_only=True, frozen=True):
    """The fields of a hook event this bridge reads; agents send more (ignored)."""

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
    model: str | None = None

    def root_key(self, dialect: Dialect) -> str:
        return f"{dialect.agent}:{self.session_id}"

    def child_key(self, dialect: Dialect) -> str | None:
        return None if self.agent_id is None else f"{self.root_key(dialect)}/{self.agent_id}"


def parse(raw: bytes, dialect: Dialect) -> Hook:
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
    if hook.hook_event_name not in dialect.events:
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
    SessionStart (for Claude Code) leaves the opening to the first prompt, whose text
    the root's description carries."""
    ask: Action | None = None


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan(hook: Hook, dialect: Dialect, gates: Iterable[str] = ()) -> Plan:
    """What a hook event does: which task (root or sub-agent child), its progress, end or question."""
    event = hook.hook_event_name
    if event == "UserPromptSubmit" and hook.prompt:
        root = _clip(f"{hook.cwd or '?'}: {hook.prompt}")
    else:
        root = _clip(hook.cwd or f"{dialect.title} session {hook.session_id}")
    child = None
    if hook.agent_id is not None:
        child = _clip(f"{hook.agent_type or 'sub-agent'} {hook.agent_id}")
    if event == "SessionStart":
        started = f"started ({hook.model})" if hook.model else None
        return Plan(root, progress=started, only_if_live=not dialect.opens_on_start)
    if event == "SessionEnd":
        return Plan(root, finish=_clip(hook.reason or "ended"), only_if_live=True)
    if event == "SubagentStop" and child is not None:
        return Plan(root, child, finish=hook.last_assistant_message or "done")
    if gated(event, hook.tool_name, gates):
        assert hook.tool_name is not None
        action = Action(agent=dialect.agent, tool=hook.tool_name, input=hook.tool_input or {},
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


def question(action: Action, dialect: Dialect) -> str:
    """The text of the prompt a decision asks, with the model's own justification when
    the agent passes one on (Codex's `tool_input.description`)."""
    text = f"{dialect.title} asks to run {action.tool}: {action.summary}"
    why = action.input.get("description")
    if isinstance(why, str) and why.strip():
        text += f" (because: {why.strip()})"
    return _clip(text)


# ------------------------------------------------------------------ outputs


def _decision(
    dialect: Dialect, event: str, allow: bool, message: str = "", interrupt: bool = False
) -> dict[str, Any] | None:
    """The hook output of a verdict; None (print nothing) for an allow the agent refuses."""
    if event == PRE_TOOL:
        if allow and not dialect.pre_tool_allows:
            return None  # Codex: no deny is the approval
        out: dict[str, Any] = {"hookEventName": PRE_TOOL,
                               "permissionDecision": "allow" if allow else "deny"}
        if message or not allow:
            out["permissionDecisionReason"] = message or "denied in taskdeck"
        return {"hookSpecificOutput": out}
    decision: dict[str, Any] = {"behavior": "allow" if allow else "deny"}
    if not allow:
        decision["message"] = message
    if interrupt and dialect.decision_stops:
        decision["interrupt"] = True
    return {"hookSpecificOutput": {"hookEventName": PERMISSION, "decision": decision}}


def decided(event: str, prompt: Prompt, dialect: Dialect) -> dict[str, Any] | None:
    """The answer to print for a person's answer: only a listed approving choice allows.

    A denial's reason, or a free-text reply, reaches the model verbatim as the deny's text.
    """
    verdict = prompt.verdict
    if verdict is Verdict.APPROVED:
        return _decision(dialect, event, True)
    if verdict is Verdict.REPLIED:
        return _decision(dialect, event, False, prompt.answer or "")
    who = prompt.answered_by or "a person"
    return _decision(dialect, event, False, prompt.reason or f"denied in taskdeck by {who}")


def stop_reason(task: Task) -> str:
    """"aborted in taskdeck by NAME", from an aborted task's error ("aborted by NAME")."""
    error = task.error or "aborted"
    return error.replace("aborted by", "aborted in taskdeck by", 1) if "aborted by" in error \
        else f"aborted in taskdeck: {error}"


def stopped(event: str, reason: str, dialect: Dialect) -> dict[str, Any]:
    """The answer of any hook of an aborted session: stop the agent (and deny, if asked).

    Where the agent takes no stop with a decision (Codex), the decision is a deny whose
    reason says the session was aborted; its next observed event stops it.
    """
    if event in (PRE_TOOL, PERMISSION):
        denied = _decision(dialect, event, False, reason, interrupt=True)
        assert denied is not None
        if not dialect.decision_stops:
            return denied
        return {"continue": False, "stopReason": reason} | denied
    return {"continue": False, "stopReason": reason}


def fail_safe(event: str | None, is_gated: bool, cause: str, dialect: Dialect) -> dict[str, Any] | None:
    """What an error prints: a gated PreToolUse denies naming the cause; everything else
    prints nothing (a PermissionRequest then goes to the agent's own dialog)."""
    if event == PRE_TOOL and is_gated:
        return _decision(dialect, PRE_TOOL, False, f"taskdeck could not ask a person: {cause}")
    return None


# ------------------------------------------------------------------ the runner


class _Ended(BaseException):
    """A signal ended the hook (the agent kills a hook that runs past its timeout)."""


def run(
    raw: bytes,
    dialect: Dialect,
    *,
    gates: Iterable[str] = (),
    idle_minutes: float = DEFAULT_IDLE_MINUTES,
    timeout: float = DEFAULT_TIMEOUT,
    runtime_dir: Path | str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Handle one hook event: print its answer (or nothing) on `out`, problems as one
    line on `err`. Always exits 0: the agent reads the answer, never the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    gates = frozenset(gates)

    def say(answer: dict[str, Any] | None) -> None:
        if answer is not None:
            out.write(msgspec.json.encode(answer).decode() + "\n")
            out.flush()

    def complain(cause: str) -> None:
        err.write(f"taskdeck hook {dialect.agent}: {printable(cause)}\n")
        err.flush()

    try:
        hook = parse(raw, dialect)
    except BadInput as exc:
        complain(str(exc))
        named = event_of(raw)
        # Unreadable input may still be a gated tool call: with gates set, deny it.
        if named in (PRE_TOOL, None) and gates:
            say(fail_safe(PRE_TOOL, True, str(exc), dialect))
        return 0
    event = hook.hook_event_name
    is_gated = gated(event, hook.tool_name, gates)
    with _signals_end():
        try:
            say(_carry_out(hook, dialect, plan(hook, dialect, gates), idle_minutes * 60,
                           timeout, runtime_dir))
        except _Ended as exc:
            complain(f"interrupted by {exc}; nothing was approved")
            say(fail_safe(event, is_gated, f"interrupted by {exc}", dialect))
        except Exception as exc:  # noqa: BLE001 - every error must end in a safe answer
            cause = _cause(exc)
            complain(cause)
            say(fail_safe(event, is_gated, cause, dialect))
    return 0


def _cause(exc: Exception) -> str:
    from core.errors import TaskdeckError

    if isinstance(exc, TaskdeckError):
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {exc}"


class _signals_end:
    """TERM, HUP, INT and QUIT raise `_Ended` in the main thread, once; later ones are ignored."""

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
    hook: Hook, dialect: Dialect, todo: Plan, lease: float, timeout: float,
    runtime_dir: Path | str | None,
) -> dict[str, Any] | None:
    """Carry a plan out on the daemon; the answer to print, or None.

    Plain blocking requests and, for a question, one blocking subscription: no event
    loop, no snapshot (a hook starts for every tool call; see core/client/waiting.py).
    """
    from core import protocol as p
    from core.client.blocking import SyncClient

    event = hook.hook_event_name
    root_key, child_key = hook.root_key(dialect), hook.child_key(dialect)
    with SyncClient(runtime_dir, client_name=f"hook-{dialect.agent}", retries=2) as client:
        here = Path(client.runtime_dir) if client.runtime_dir is not None else _runtime_dir()
        newest = _newest(client, {root_key, child_key} - {None})
        for task in newest.values():
            if task.end_reason is not None and task.end_reason.value == "aborted":
                return stopped(event, stop_reason(task), dialect)
        if todo.only_if_live:
            live = newest.get(root_key)
            if live is None or live.status.is_ended:
                return None
        known = newest.get(child_key or root_key)
        if known is not None and known.blocked_on is not None:
            _sweep(client, hook, dialect, known.id, here)

        def opened(description: str, key: str, parent_id: int | None = None) -> Task:
            body = p.Open(description=description, agent=dialect.agent, lease=lease, key=key,
                          parent_id=parent_id)
            return client.request(body).task  # type: ignore[union-attr]

        target = opened(todo.root_description, root_key)
        if todo.child_description is not None:
            assert child_key is not None
            target = opened(todo.child_description, child_key, target.id)
        if todo.ask is not None:
            return _decide(client, target, event, todo.ask, dialect, timeout, lease, here)
        if todo.progress is not None:
            client.request(p.Progress(task_id=target.id, text=todo.progress))
        if todo.finish is not None:
            client.request(p.Finish(task_id=target.id, result=todo.finish[: p.MAX_RESULT]))
            from core.bridges.waiters import forget

            forget(here, target.id)
        return None


def _runtime_dir() -> Path:
    from core.runtime import default_runtime_dir

    return default_runtime_dir()


def _newest(client: Any, keys: set[str | None]) -> dict[str, Task]:
    """The newest task opened with each key, ended or not (the daemon looks each key up)."""
    found: dict[str, Task] = {}
    for key in keys:
        if key is not None:
            for task in client.list_tasks(key=key, limit=1):
                found[key] = task
    return found


TURN_OVER = {
    "Stop": "its turn ended",
    "SubagentStop": "the sub-agent ended",
    "UserPromptSubmit": "a new prompt was sent",
    "SessionEnd": "the session ended",
}
"""Events after which no question of the (sub-)agent can still be open in the agent."""


def settled(hook: Hook, dialect: Dialect, prompt: Prompt) -> str | None:
    """Why this event shows the agent itself already decided the pending `prompt` of the
    same (sub-)agent, or None when it does not.

    The agent's own dialog can win the race (Claude Code then leaves its hook waiting,
    unheard, until the hook's timeout): the call it asked about has run, or shows in a
    batch, or the turn is over.
    """
    action = prompt.action
    if action is None or action.agent != dialect.agent:
        return None
    event = hook.hook_event_name
    if event in TURN_OVER:
        return TURN_OVER[event]
    calls: list[tuple[Any, Any]] = []
    if event == "PostToolUse":
        calls.append((hook.tool_name, hook.tool_input))
    elif event == "PostToolBatch":
        calls.extend((c.get("tool_name"), c.get("tool_input")) for c in hook.tool_calls or []
                     if isinstance(c, dict))
    for tool, given in calls:
        if tool == action.tool and isinstance(given, dict) \
                and summarize(tool, given) == action.summary:
            return f"{tool} ran" if event == "PostToolUse" else f"{tool} was decided in its batch"
    return None


def _sweep(client: Any, hook: Hook, dialect: Dialect, task_id: int, here: Path) -> None:
    """Close the task's pending questions the agent decided itself, as answered in the agent.

    Closed when this event shows the decision (`settled`), or when no hook waits on
    them any more (`waiters`); a question a live hook waits on stays open otherwise.
    """
    from core.bridges.waiters import unwaited
    from core.errors import TaskdeckError
    from core.model import PromptState

    with unwaited(here, task_id) as nobody_waits:
        _, prompts = client.get(task_id)
        for prompt in prompts:
            if prompt.state is not PromptState.PENDING:
                continue
            why = settled(hook, dialect, prompt)
            if why is None and nobody_waits and prompt.action is not None \
                    and prompt.action.agent == dialect.agent:
                why = "the hook waiting on it is gone"
            if why is None:
                continue
            try:
                client.answer(prompt.id, ANSWERED_IN_AGENT, reason=why, by=dialect.title)
            except TaskdeckError:  # answered or closed meanwhile: nothing left to close
                pass


def _decide(
    client: Any, target: Task, event: str, action: Action, dialect: Dialect, timeout: float,
    lease: float, here: Path,
) -> dict[str, Any] | None:
    """Ask a person on the task and turn the answer into the hook's answer.

    A timeout is the prompt's own (the daemon closes it as timed out). Any other way the
    wait ends early (a signal, an error) closes the still pending prompt with a deny
    whose reason says why, so nobody answers a question no one waits for. A question
    closed as answered in the agent prints nothing: the agent's own dialog decides.
    """
    from core.bridges.parent import Agent
    from core.bridges.waiters import waiting
    from core.client.waiting import ask_and_wait
    from core.errors import InvalidState
    from core.model import Question

    asked: list[Prompt] = []
    agent = Agent.find()  # its death closes the question: nobody would read the answer
    with waiting(here, target.id):
        try:
            prompt = ask_and_wait(
                client, target.id, Question(text=question(action, dialect), timeout=timeout,
                                            action=action),
                lease=lease, on_asked=asked.append, gone=agent.gone if agent else None)
        except InvalidState:
            task = client.get(target.id)[0]
            if task.end_reason is not None and task.end_reason.value == "aborted":
                return stopped(event, stop_reason(task), dialect)
            raise
        except (Exception, _Ended) as exc:
            if asked:
                _close(client, asked[0], exc, dialect)
            raise
    if prompt.answer == ANSWERED_IN_AGENT and prompt.answered_by == dialect.title:
        return None
    return decided(event, prompt, dialect)


def _close(client: Any, prompt: Prompt, exc: BaseException, dialect: Dialect) -> None:
    """Deny a pending prompt the hook stops waiting on (best effort: it may be closed)."""
    from core.errors import TaskdeckError

    why = f"interrupted by {exc}" if isinstance(exc, _Ended) else _cause(exc)  # type: ignore[arg-type]
    try:
        client.answer(prompt.id, "deny", reason=f"the hook stopped waiting: {why}",
                      by=f"taskdeck hook {dialect.agent}")
    except TaskdeckError:
        pass


def main(args: Any, dialect: Dialect) -> int:
    """`taskdeck hook AGENT`: stdin in, answer out."""
    raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    return run(raw, dialect, gates=args.gate or (), idle_minutes=args.idle,
               timeout=args.timeout, runtime_dir=args.runtime_dir)
