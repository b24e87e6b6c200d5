"""Wire messages between the daemon and its clients: MessagePack envelopes, commands, replies."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.errors import BadRequest, VersionMismatch
from core.model import (
    MAX_COUNT,
    MAX_NAME,
    MAX_TEXT,
    Action,
    Event,
    Prompt,
    Question,
    Snapshot,
    Task,
    TaskStatus,
    Tree,
)
from core.policy import Effect, Rule, Ruling

PROTOCOL_VERSION = 2
"""The newest protocol version this code speaks; bumped on any change an older peer could
misread. Version 2 sends a snapshot's tasks as rows (arrays) instead of maps."""

SERVED_VERSIONS: tuple[int, ...] = (1, 2)
"""Versions the daemon answers, each in its own form: a client declares the one it speaks
in every request (the highest both know, from the connection file's `versions`)."""

MAX_MESSAGE = 1 << 20
"""Largest request (and event) in bytes; the transport drops bigger ones (ZMQ_MAXMSGSIZE)."""

MAX_REPLY = 256 << 20
"""Largest reply a client accepts: a snapshot of a big registry can exceed MAX_MESSAGE."""

MAX_RESULT = 65536
"""Characters in a task's result or error."""

MAX_CHOICES = 9
"""Choices a question may offer (keys 1-9 pick them)."""

MAX_CHOICE = 64
"""Characters in one choice."""

MAX_LIST = 10000
"""Most tasks one `list` request returns."""

MAX_LIST_BYTES = 16 << 20
"""About how many bytes of tasks one `list` reply carries: past it, fewer than `limit`
tasks come back (page on with `before`), so one request cannot make a reply of
hundreds of megabytes (10,000 tasks with 64 KiB results each)."""

MAX_HISTORY = 10000
"""Most decisions one `history` request returns."""

EVENT_TOPIC = b"event"
"""First frame of an event message on the PUB socket."""

HEARTBEAT_TOPIC = b"heartbeat"
"""First frame of a heartbeat message on the PUB socket."""

Text = Annotated[str, Meta(max_length=MAX_TEXT)]
LongText = Annotated[str, Meta(max_length=MAX_RESULT)]
Name = Annotated[str, Meta(max_length=MAX_NAME)]
Choice = Annotated[str, Meta(min_length=1, max_length=MAX_CHOICE)]
Choices = Annotated[list[Choice], Meta(min_length=1, max_length=MAX_CHOICES)]
Id = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Seconds = Annotated[float, Meta(gt=0, le=7 * 86400)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
RequestId = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Who sends a request, as the sender declares it (recorded, not authenticated).

    The exception is `curve_key`: the daemon fills it in from the transport.
    """

    user: Name = ""
    host: Name = ""
    pid: Count = 0
    client: Name = ""
    """The kind of program: "cli", "tui", "ask", a library name..."""
    curve_key: Name | None = None
    """The Z85 CURVE public key the request came in with (TCP only). The daemon sets it
    from the transport and overwrites whatever a client sends, so it can be trusted."""

    @property
    def by(self) -> str:
        """How answers and aborts from this origin are recorded: "client:user@host"."""
        return f"{self.client or 'unknown'}:{self.user or '?'}@{self.host or '?'}"


# ---------------------------------------------------------------- commands


class Command(msgspec.Struct, tag_field="op", kw_only=True):
    """Base of every request body; `op` names the command."""

    mutating = False
    """Changes the registry: its reply is remembered so a retry is not applied twice."""


class Hello(Command, tag="hello"):
    """Check the daemon is there and speaks our protocol version."""

    client_version: Name = ""


class GetSnapshot(Command, tag="snapshot"):
    """Every task and pending prompt, and the seq they reflect."""


class ListTasks(Command, tag="list"):
    """Tasks newest first, filtered, at most `limit` with ids below `before`."""

    agent: Name | None = None
    status: TaskStatus | None = None
    parent_id: Id | None = None
    roots_only: bool = False
    limit: Annotated[int, Meta(ge=0, le=MAX_LIST)] = 100
    before: Id | None = None
    key: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)] | None = None
    """Only the newest task opened with this external key (ended ones too)."""


class GetTask(Command, tag="get"):
    """One task and its question history."""

    task_id: Id


class History(Command, tag="history"):
    """The audit trail: who answered or aborted what, oldest first (the last `limit`).

    With `task_id`, the decisions that touched that task, including the abort of an
    ancestor that ended it.
    """

    task_id: Id | None = None
    limit: Annotated[int, Meta(ge=0, le=MAX_HISTORY)] = 200


class Submit(Command, tag="submit"):
    """Start a task for an in-process agent of the daemon."""

    mutating = True
    agent: Name
    description: Text
    parent_id: Id | None = None
    timeout: Seconds | None = None
    created_by: Name | None = None


class Answer(Command, tag="answer"):
    """Answer a pending prompt by its id."""

    mutating = True
    prompt_id: Id
    text: Text
    reason: Text | None = None
    by: Name | None = None


class AnswerTask(Command, tag="answer_task"):
    """Answer the prompt a task waits on now (or check it is `prompt_id`)."""

    mutating = True
    task_id: Id
    text: Text
    reason: Text | None = None
    by: Name | None = None
    prompt_id: Id | None = None


class Abort(Command, tag="abort"):
    """End a task and, unless `only`, its whole subtree."""

    mutating = True
    task_id: Id
    only: bool = False


class Open(Command, tag="open"):
    """Open an external task: the caller does the work and reports on it."""

    mutating = True
    description: Text
    agent: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)] = "external"
    parent_id: Id | None = None
    lease: Seconds = 10.0
    timeout: Seconds | None = None
    created_by: Name | None = None
    key: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)] | None = None
    """An external key ("claude:SESSION_ID"): while a task opened with it lives, this
    returns that task (lease renewed) instead of opening another; the rest is ignored."""


class Tokens(Command, tag="tokens"):
    """Count tokens an external task spent."""

    mutating = True
    task_id: Id
    prompt: Count = 0
    completion: Count = 0


class Progress(Command, tag="progress"):
    """Set (or clear, with None) an external task's progress line."""

    mutating = True
    task_id: Id
    text: Text | None = None


class Ask(Command, tag="ask"):
    """Block an external task on a question; the reply is the open Prompt at once.

    The answer arrives later as a `promptclosed` event on the PUB socket.
    """

    mutating = True
    task_id: Id
    question: Text
    choices: Choices | None = None
    timeout: Seconds | None = None
    default: Choice | None = None
    action: Action | None = None
    """What the asker wants to do (tool, input, ...); older clients send none."""

    @classmethod
    def of(cls, task_id: int, question: Question) -> Ask:
        """The wire form of a task's question (its fields stay flat, as documented)."""
        return cls(task_id=task_id, question=question.text, choices=question.choices,
                   timeout=question.timeout, default=question.default, action=question.action)

    def to_question(self) -> Question:
        """The question this message asks."""
        return Question(text=self.question, choices=self.choices, timeout=self.timeout,
                        default=self.default, action=self.action)


class Finish(Command, tag="finish"):
    """End an external task with its result."""

    mutating = True
    task_id: Id
    result: LongText = ""


class Fail(Command, tag="fail"):
    """End an external task as failed."""

    mutating = True
    task_id: Id
    error: LongText


class LeaseHeartbeat(Command, tag="heartbeat"):
    """Renew an external task's lease (optionally with a new length)."""

    mutating = True
    task_id: Id
    lease: Seconds | None = None


class AddRule(Command, tag="rule_add"):
    """Add an approval rule; pending questions it decides close at once (`docs/protocol.md`)."""

    mutating = True
    effect: Effect
    pattern: Text
    """In Claude Code's syntax: `Bash(npm test *)`, `Edit(src/**)`, `WebFetch(domain:x.org)`."""
    agent: Name | None = None
    session: Name | None = None
    task_id: Id | None = None
    expires: Annotated[float, Meta(gt=0, le=10 * 365 * 86400)] | None = None
    """Seconds from now until the rule stops deciding."""
    everything: bool = False
    """Consent to a pattern that matches every use of its tool."""
    by: Name | None = None


class RemoveRule(Command, tag="rule_rm"):
    """Remove an approval rule by its id."""

    mutating = True
    rule_id: Id
    by: Name | None = None


class ListRules(Command, tag="rules"):
    """Every approval rule, in force or expired, by id."""


class TestRules(Command, tag="rule_test"):
    """Which rule would decide this action (asked by `task_id`, if given), and why."""

    __test__ = False  # not a pytest class
    action: Action
    task_id: Id | None = None


Body = (
    Hello
    | GetSnapshot
    | ListTasks
    | GetTask
    | History
    | Submit
    | Answer
    | AnswerTask
    | Abort
    | Open
    | Tokens
    | Progress
    | Ask
    | Finish
    | Fail
    | LeaseHeartbeat
    | AddRule
    | RemoveRule
    | ListRules
    | TestRules
)

COMMANDS: dict[str, type[Command]] = {
    cls.__struct_config__.tag: cls
    for cls in Body.__args__  # type: ignore[attr-defined]
}
"""Command classes by their `op` tag."""


class Request(msgspec.Struct, kw_only=True):
    """The envelope of every command: who, which protocol, which retry group."""

    id: RequestId
    """Chosen by the client, unique per logical request; the same on every retry."""
    version: int
    body: Body
    origin: Origin = Origin()


# ----------------------------------------------------------------- results


class Result(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every successful reply's payload; `type` names its shape."""


class HelloResult(Result, tag="hello"):
    """Who the daemon is and what it offers."""

    version: int
    """The version this exchange speaks: the request's."""
    epoch: int
    seq: int
    server: str
    pid: int
    agents: list[str]
    heartbeat: float
    max_message: int
    journal_error: str | None = None
    """Set while the daemon's journal cannot be written: it then refuses decisions."""
    versions: list[int] = msgspec.field(default_factory=lambda: [1])
    """Every protocol version the daemon serves (a version 1 daemon sends none)."""


class SnapshotResult(Result, tag="snapshot"):
    """The registry's state as of `snapshot.seq`."""

    snapshot: Snapshot

    def state(self) -> Snapshot:
        """The snapshot with plain `Task`s, whichever form it came in."""
        return self.snapshot

    def tree(self) -> Tree | None:
        """The task tree, when the daemon sent it (protocol 2); else None."""
        return None


class TaskRow(Task, array_like=True):
    """A task in the compact form of protocol 2: its fields as an array, in `Task`'s order.

    A map repeats 22 field names per task; the array holds only the values, 45 % of
    the bytes, and the daemon keeps an ended task's row encoded (docs/BENCHMARKS.md).
    """


class CompactSnapshot(msgspec.Struct, kw_only=True):
    """`Snapshot` with each task as a `TaskRow`, in id order, and the tree (protocol 2).

    The daemon keeps the tree as it goes; sending it spares every client a pass over
    all tasks to build it again, a fifth of a late join at 100,000 tasks.
    """

    epoch: int
    seq: int
    tasks: list[TaskRow]
    prompts: list[Prompt]
    roots: list[int]
    """Ids of the tasks without a parent, in id order."""
    children: dict[int, list[int]]
    """Child ids by parent id, in id order; a task without children has no entry."""


class CompactSnapshotResult(SnapshotResult, tag="rows_snapshot"):
    """The registry's state as of `snapshot.seq`, its tasks as rows (protocol 2)."""

    snapshot: CompactSnapshot  # type: ignore[assignment]

    def state(self) -> Snapshot:
        """The snapshot with plain `Task`s: equal to the daemon's, and printed the same.

        msgspec decodes an array only into an array-like type, but clients, events and
        JSON output need plain `Task` maps. A row adds no field to `Task`, so its object
        has Task's very layout and becomes one by changing class (which CPython allows
        between types of one layout): ~30 ns a task, where building a Task costs ~1 µs.
        """
        rows = self.snapshot.tasks
        for row in rows:
            row.__class__ = Task
        snap = self.snapshot
        return Snapshot(epoch=snap.epoch, seq=snap.seq, tasks=rows,  # type: ignore[arg-type]
                        prompts=snap.prompts)

    def tree(self) -> Tree:
        """The tree the daemon sent: roots and child ids by parent."""
        return Tree(roots=self.snapshot.roots, children=self.snapshot.children)


class TasksResult(Result, tag="tasks"):
    """A list of tasks."""

    tasks: list[Task]


class TaskDetail(Result, tag="task_detail"):
    """One task and every prompt it asked, oldest first."""

    task: Task
    prompts: list[Prompt]


class TaskResult(Result, tag="task"):
    """A task as it is after the command."""

    task: Task


class PromptResult(Result, tag="prompt"):
    """A prompt as it is after the command."""

    prompt: Prompt


class AbortResult(Result, tag="aborted"):
    """The tasks this abort ended, parents first (empty if all had ended already)."""

    task_ids: list[int]


class Decision(msgspec.Struct, kw_only=True):
    """One recorded decision of a person: who answered or aborted what, when, from where."""

    id: int
    """Increasing in the order decisions were made (across daemon restarts)."""
    ts: float
    action: str
    """"answer" or "abort" (later daemons may record other actions)."""
    task_id: int | None = None
    """The task acted on (for an abort, the root of what it ended)."""
    prompt_id: int | None = None
    """The prompt answered."""
    detail: str = ""
    """The answer (with ": reason" for a reason), or what an abort ended."""
    by: str = ""
    """Who the registry records as acting, e.g. "tui:ana@box"."""
    user: str | None = None
    host: str | None = None
    pid: int | None = None
    client: str | None = None
    """The request's origin, as its sender declared it."""
    curve_key: str | None = None
    """The sender's CURVE public key (Z85), as the daemon saw it; None off TCP."""
    epoch: int | None = None
    """The daemon run the decision was made in."""
    question: str | None = None
    """The question answered, so the record stands alone (None in older journals)."""
    summary: str | None = None
    """The summary line of the action that question asked leave for (None for a plain
    question, and in older journals)."""


class HistoryResult(Result, tag="history"):
    """Decisions, oldest first."""

    entries: list[Decision]


class RuleResult(Result, tag="rule"):
    """A rule as added or removed."""

    rule: Rule


class RulesResult(Result, tag="rules"):
    """Every rule, by id, and the daemon's time (to tell which have expired)."""

    rules: list[Rule]
    now: float


class RulingResult(Result, tag="ruling"):
    """What the rules say of an action."""

    ruling: Ruling


ResultBody = (
    HelloResult
    | SnapshotResult
    | CompactSnapshotResult
    | TasksResult
    | TaskDetail
    | TaskResult
    | PromptResult
    | AbortResult
    | HistoryResult
    | RuleResult
    | RulesResult
    | RulingResult
)


class Error(msgspec.Struct, kw_only=True):
    """Why a request failed: a stable code and a sentence for a person."""

    code: str
    message: str


class Reply(msgspec.Struct, kw_only=True):
    """The envelope of every reply: `ok` with a result, or an error."""

    id: str
    """The request's id ("" when the request was too broken to read one)."""
    ok: bool
    result: ResultBody | None = None
    error: Error | None = None


# ------------------------------------------------------------------ events


class Heartbeat(msgspec.Struct, kw_only=True):
    """Published when the daemon is idle: proves it is alive and says the last seq."""

    epoch: int
    seq: int
    ts: float
    journal_error: str | None = None
    """Set while the daemon's journal cannot be written: it then refuses decisions."""


# ------------------------------------------------------------ coding tools

ENCODER = msgspec.msgpack.Encoder()
"""Encodes every message; built once."""

REPLY_DECODER = msgspec.msgpack.Decoder(Reply)
EVENT_DECODER = msgspec.msgpack.Decoder(Event)
HEARTBEAT_DECODER = msgspec.msgpack.Decoder(Heartbeat)
_ANY_DECODER = msgspec.msgpack.Decoder()


@functools.cache
def _request_decoder() -> msgspec.msgpack.Decoder[Request]:
    """Built on first use: only the daemon reads requests, and a client (a hook, started
    for every tool call) need not pay for every command's type."""
    return msgspec.msgpack.Decoder(Request)


def encode(message: object) -> bytes:
    """MessagePack bytes of any wire message."""
    return ENCODER.encode(message)


def decode_request(data: bytes, versions: tuple[int, ...] = SERVED_VERSIONS) -> Request:
    """Read a request, saying exactly what is wrong with a bad one.

    Raises:
        VersionMismatch: the request declares another protocol version.
        BadRequest: not MessagePack, not a request, an unknown command, a field of the
            wrong type or over its length cap.
    """
    try:
        request = _request_decoder().decode(data)
    except msgspec.ValidationError as exc:
        head = peek(data)
        version = head.get("version")
        if isinstance(version, int) and version not in versions:
            raise VersionMismatch(_mismatch(version, versions)) from None
        body = head.get("body")
        op = body.get("op") if isinstance(body, dict) else None
        if isinstance(op, str) and op not in COMMANDS:
            known = ", ".join(sorted(COMMANDS))
            raise BadRequest(f"unknown command {op[:64]!r} (known: {known})") from None
        raise BadRequest(f"invalid request: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request is not valid MessagePack: {exc}") from None
    except RecursionError:
        raise BadRequest("request is nested too deeply") from None
    if request.version not in versions:
        raise VersionMismatch(_mismatch(request.version, versions))
    return request


def peek(data: bytes) -> dict[str, Any]:
    """The top-level map of a message that failed to decode, or {} if it is not one."""
    try:
        value = _ANY_DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _mismatch(version: int, versions: tuple[int, ...]) -> str:
    served = " or ".join(map(str, versions))
    return f"client speaks protocol {version}, the daemon speaks {served}"


def choose_version(offered: list[int] | None, version: int) -> int:
    """The highest protocol version both this code and a daemon speak.

    Args:
        offered: the daemon's `versions` (None from a version 1 daemon, which has none).
        version: the daemon's base `version`, all a version 1 daemon speaks.

    Raises:
        VersionMismatch: the two share no version.
    """
    common = set(offered or [version]) & set(SERVED_VERSIONS)
    if not common:
        theirs = " or ".join(map(str, offered or [version]))
        ours = " or ".join(map(str, SERVED_VERSIONS))
        raise VersionMismatch(f"the daemon speaks protocol {theirs}, this client {ours}")
    return max(common)


def error_reply(request_id: str, code: str, message: str) -> bytes:
    """Encoded error reply."""
    return ENCODER.encode(Reply(id=request_id, ok=False, error=Error(code=code, message=message)))
