"""The daemon's commands without its sockets: one encoded request in, one encoded reply out.

The service decodes a request, answers a retry from the replies it remembers, refuses
what the journal could not record, and applies the command to the registry. The
server (core/server.py) owns the sockets and when things are sent: it hands the
service each request's frames, writes the journal once per batch of requests
(`write`), and only then publishes events and sends replies. A reply that created,
ended or decided something stands only once that write succeeds; `handle` says which
replies those are, and `unrecorded` gives the reply that replaces one when it fails.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol, assert_never

import msgspec

import core
from core import protocol as p
from core.errors import InvalidState, TaskdeckError
from core.model import Prompt, Task
from core.registry import Registry
from core.rows import RowCache

log = logging.getLogger(__name__)

DEDUPE_SIZE = 4096
"""Replies to mutating requests remembered by request id, so a retry is not applied twice."""

RECORDED = (p.Submit, p.Open, p.Ask, p.Answer, p.AnswerTask, p.Abort, p.Finish, p.Fail,
            p.AddRule, p.RemoveRule)
"""Commands that create, end or decide: refused while the journal cannot record them."""

DECIDED = (p.Answer, p.AnswerTask, p.Abort, p.AddRule, p.RemoveRule)
"""Decisions: the registry's recorder writes them (fsynced) before they apply, so their
"ok" stands whatever becomes of the batch's later write."""


class JournalLike(Protocol):
    """What the service needs of a journal; `core.journal.Journal` is one.

    People's decisions go through `record` (installed as the registry's recorder while
    the service serves) before they are applied; everything else waits for `write`,
    which the server calls once per batch of requests, before their replies.
    """

    @property
    def failed(self) -> str | None:
        """Why the journal stopped writing; None while sound."""
        ...

    def record(
        self, action: str, *, tasks: Iterable[Task] = ..., prompts: Iterable[Prompt] = ...,
        **fields: Any,
    ) -> None:
        """Write one decision durably before the registry applies it; raise if it cannot."""
        ...

    def write(self) -> None:
        """Write everything pending; raise a TaskdeckError if it cannot."""
        ...

    def remember(self, request_id: str, reply: bytes) -> None:
        """Keep a state change's reply, written with its batch, for a retry after a restart."""
        ...

    def replies(self) -> list[tuple[str, bytes]]:
        """The remembered replies, oldest first."""
        ...

    def history(self, *, task_id: int | None = None, limit: int | None = None
                ) -> Sequence[p.Decision]:
        """Decisions oldest first (the last `limit`), all or those touching one task."""
        ...


class Handled(NamedTuple):
    """One request's reply, and whether it waits on the batch's journal write."""

    reply: bytes
    recorded: str | None
    """The request id when the request created, ended or decided something: its reply
    stands only once the journal has written the batch (else see `unrecorded`)."""


class CommandService:
    """Answers wire requests from a registry (and its journal), with no sockets.

    Args:
        registry: the registry the commands act on.
        journal: optional; see `JournalLike`. Without one, `history` is refused and nothing
            outlives the process.
        heartbeat: the server's heartbeat interval, told to clients in `hello`.
        max_message: largest request accepted, in bytes.
        dedupe_size: replies remembered by request id.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        journal: JournalLike | None = None,
        heartbeat: float = 1.0,
        max_message: int = p.MAX_MESSAGE,
        dedupe_size: int = DEDUPE_SIZE,
        versions: tuple[int, ...] = p.SERVED_VERSIONS,
    ) -> None:
        self.registry = registry
        self.versions = versions
        """Protocol versions served; a request declaring another is VERSION_MISMATCH."""
        self._rows = RowCache()
        """Rows of ended tasks for protocol 2 snapshots, kept as they end once started."""
        self._unfollow: Callable[[], None] | None = None
        self.journal = journal
        self.heartbeat = heartbeat
        self.max_message = max_message
        self._replies: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._dedupe_size = dedupe_size
        self._recorder_installed = False
        self._grouped = False
        """Inside `deferred_syncs` of a journal that groups its decisions' commits."""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Take up the replies the journal remembers and make it the registry's recorder;
        keep snapshot rows from now on."""
        if self._unfollow is None:
            self._unfollow = self._rows.follow(self.registry)
        journal = self.journal
        if journal is None:
            return
        for request_id, reply in journal.replies()[-self._dedupe_size:]:
            self._replies[request_id] = reply  # a retry after a restart is not applied again
        if self.registry.recorder is None:
            self.registry.recorder = journal.record
            self._recorder_installed = True

    def stop(self) -> None:
        """Give the registry back without the recorder and listener `start` installed."""
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        if self._recorder_installed:
            self.registry.recorder = None
            self._recorder_installed = False

    @property
    def journal_error(self) -> str | None:
        """Why the journal cannot record decisions now; None when it can (or there is none)."""
        return self.journal.failed if self.journal is not None else None

    @contextlib.contextmanager
    def deferred_syncs(self) -> Iterator[None]:
        """Within: the batch's decisions share the journal's next `write` (group commit).

        Each decision is still written before it applies, into the batch's transaction;
        its reply then stands only once `write` commits it, like any recorded reply. A
        journal without `deferred_syncs` commits each decision on its own.

        In-process agents hear the batch's decisions only on the way out, once the commit
        is done: if it failed, an asker whose prompt was answered gets `Unrecorded`
        instead of the answer (`Registry.release_wakeups`).
        """
        defer = getattr(self.journal, "deferred_syncs", None)
        if defer is None:
            yield
            return
        self.registry.hold_wakeups()
        try:
            with defer():
                self._grouped = True
                try:
                    yield
                finally:
                    self._grouped = False
        finally:
            # Failed now: either this batch's commit failed, or the journal had failed
            # before it and refused every decision, so no answer is among the wake-ups.
            self.registry.release_wakeups(self.journal_error)

    def write(self) -> str | None:
        """Write the journal's pending rows; None when done, else why it failed (logged)."""
        if self.journal is None:
            return None
        try:
            self.journal.write()
        except TaskdeckError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------- requests

    def handle(self, payload: list[bytes], curve_key: str | None = None) -> Handled:
        """Answer one request's frames (after the routing envelope); never raises for a request.

        Args:
            payload: the request frames; exactly one is expected.
            curve_key: the sender's CURVE public key as the transport authenticated it;
                it replaces whatever `origin.curve_key` the request declares.
        """
        if len(payload) != 1:
            return _as_is(
                p.error_reply("", "BAD_REQUEST", f"expected 1 request frame, got {len(payload)}")
            )
        data = payload[0]
        if len(data) > self.max_message:
            return _as_is(p.error_reply(
                "", "BAD_REQUEST", f"request of {len(data)} bytes exceeds {self.max_message}"
            ))
        try:
            request = p.decode_request(data, self.versions)
        except TaskdeckError as exc:
            request_id = p.peek(data).get("id")
            if not isinstance(request_id, str) or len(request_id) > p.MAX_NAME:
                request_id = ""
            return _as_is(p.error_reply(request_id, exc.code, str(exc)))
        if request.origin.curve_key != curve_key:
            request.origin = msgspec.structs.replace(request.origin, curve_key=curve_key)
        cached = self._replies.get(request.id)
        if cached is not None:
            self._replies.move_to_end(request.id)
            return _as_is(cached)
        recorded = isinstance(request.body, RECORDED)
        if recorded and self.journal_error is not None:
            return _as_is(p.error_reply(
                request.id, "JOURNAL_FAILED",
                f"refused: the daemon cannot record it: {self.journal_error}",
            ))
        try:
            result = self._apply(request)
            reply = p.ENCODER.encode(p.Reply(id=request.id, ok=True, result=result))
        except TaskdeckError as exc:
            reply = p.error_reply(request.id, exc.code, str(exc))
        except Exception as exc:  # a bug must cost one request, never the daemon
            log.exception("request %s (%s) failed", request.id, type(request.body).__name__)
            reply = p.error_reply(request.id, "INTERNAL", f"internal error: {exc!r}")
        if request.body.mutating:
            self._remember(request.id, reply, recorded=recorded)
        written_first = (isinstance(request.body, DECIDED) and self.registry.recorder is not None
                         and not self._grouped)
        return Handled(reply, request.id if recorded and not written_first else None)

    def unrecorded(self, request_id: str, error: str) -> bytes:
        """The reply to a recorded request whose batch the journal failed to write.

        The change stays in memory only; a retry gets this reply too.
        """
        reply = p.error_reply(request_id, "JOURNAL_FAILED",
                              f"applied in memory only, not recorded: {error}")
        if request_id in self._replies:
            self._replies[request_id] = reply
        return reply

    def _remember(self, request_id: str, reply: bytes, *, recorded: bool) -> None:
        """Keep the reply to a state change by request id, so a retry gets it unapplied.

        Replies to commands that create, end or decide also go to the journal, so a
        retry whose first reply was lost in a crash is not applied again after the restart.
        """
        self._replies[request_id] = reply
        if len(self._replies) > self._dedupe_size:
            self._replies.popitem(last=False)
        if recorded and self.journal is not None:
            self.journal.remember(request_id, reply)  # written with the batch, before the reply

    # ------------------------------------------------------------- commands

    def _apply(self, request: p.Request) -> p.ResultBody:
        """Carry out one decoded command on the registry."""
        registry = self.registry
        origin = request.origin
        # Each case is a type check in turn: the commands a person waits on come first
        # (`submit` placed seventh paid 0.5 us for the checks before it).
        match request.body:
            case p.Submit() as body:
                return p.TaskResult(task=registry.submit(
                    body.agent, body.description, parent_id=body.parent_id,
                    timeout=body.timeout, created_by=body.created_by or "user",
                ))
            case p.Answer() as body:
                return p.PromptResult(prompt=registry.answer(
                    body.prompt_id, body.text, by=body.by or origin.by, reason=body.reason,
                    origin=origin,
                ))
            case p.AnswerTask() as body:
                prompt_id = registry.prompt_to_answer(body.task_id, body.prompt_id)
                return p.PromptResult(prompt=registry.answer(
                    prompt_id, body.text, by=body.by or origin.by, reason=body.reason,
                    origin=origin,
                ))
            case p.Hello():
                return self._hello(request.version)
            case p.GetSnapshot() if request.version >= 2:
                # Encoded by `handle` before anything can change the tasks: no copies.
                return p.CompactSnapshotResult(snapshot=self._rows.snapshot(
                    registry.tasks_by_id(), registry.tree(), epoch=registry.epoch,
                    seq=registry.seq, prompts=registry.pending_prompts()))
            case p.GetSnapshot():
                return p.SnapshotResult(snapshot=registry.snapshot(copies=False))
            case p.ListTasks() as body:
                return p.TasksResult(tasks=_within_budget(registry.list(
                    agent=body.agent, status=body.status, parent_id=body.parent_id,
                    roots_only=body.roots_only, limit=body.limit, before=body.before,
                    key=body.key,
                )))
            case p.GetTask(task_id=task_id):
                return p.TaskDetail(task=registry.get(task_id),
                                    prompts=registry.prompts_of(task_id))
            case p.History(task_id=task_id, limit=limit):
                if self.journal is None:
                    raise InvalidState("this daemon keeps no journal (started with --no-journal)")
                entries = self.journal.history(task_id=task_id, limit=limit)
                return p.HistoryResult(entries=[_decision(entry) for entry in entries])
            case p.Abort(task_id=task_id, only=only):
                return p.AbortResult(task_ids=registry.abort(
                    task_id, recursive=not only, by=origin.by, origin=origin
                ))
            case p.Open() as body:
                return p.TaskResult(task=registry.open_external(
                    body.description, agent=body.agent, parent_id=body.parent_id,
                    created_by=body.created_by or "user", lease=body.lease, timeout=body.timeout,
                    key=body.key,
                ))
            case p.Tokens(task_id=task_id, prompt=prompt, completion=completion):
                registry.check_external(task_id)
                return p.TaskResult(task=registry.add_tokens(task_id, prompt, completion))
            case p.Progress(task_id=task_id, text=text):
                registry.check_external(task_id)
                return p.TaskResult(task=registry.set_progress(task_id, text))
            case p.Ask() as body:
                registry.check_external(body.task_id)
                return p.PromptResult(
                    prompt=registry.open_prompt(body.task_id, body.to_question())
                )
            case p.Finish(task_id=task_id, result=result):
                return p.TaskResult(task=registry.finish(task_id, result))
            case p.Fail(task_id=task_id, error=error):
                return p.TaskResult(task=registry.fail(task_id, error))
            case p.LeaseHeartbeat(task_id=task_id, lease=lease):
                return p.TaskResult(task=registry.heartbeat(task_id, lease=lease))
            case p.AddRule() as body:
                return p.RuleResult(rule=registry.add_rule(
                    body.effect, body.pattern, agent=body.agent, session=body.session,
                    task_id=body.task_id, expires=body.expires, everything=body.everything,
                    by=body.by or origin.by, origin=origin,
                ))
            case p.RemoveRule(rule_id=rule_id, by=by):
                return p.RuleResult(rule=registry.remove_rule(rule_id, by=by or origin.by,
                                                              origin=origin))
            case p.ListRules():
                return p.RulesResult(rules=registry.list_rules(), now=registry.clock())
            case p.TestRules(action=action, task_id=task_id):
                return p.RulingResult(ruling=registry.test_rules(action, task_id=task_id))
        assert_never(request.body)

    def _hello(self, version: int) -> p.HelloResult:
        registry = self.registry
        return p.HelloResult(
            version=version,
            versions=list(self.versions),
            epoch=registry.epoch,
            seq=registry.seq,
            server=f"taskdeck {core.__version__}",
            pid=os.getpid(),
            agents=registry.agents,
            heartbeat=self.heartbeat,
            max_message=self.max_message,
            journal_error=self.journal_error,
        )


def _as_is(reply: bytes) -> Handled:
    """A reply that changed nothing here: it needs no journal write."""
    return Handled(reply, None)


def _within_budget(tasks: list[p.Task]) -> list[p.Task]:
    """The first tasks of a list that fit a reply of `MAX_LIST_BYTES` (at least one)."""
    budget = p.MAX_LIST_BYTES
    for kept, task in enumerate(tasks):
        budget -= _approx_size(task)
        if budget < 0 and kept:
            del tasks[kept:]
            break
    return tasks


def _approx_size(task: p.Task) -> int:
    """Roughly a task's encoded size: its texts plus the fixed fields."""
    size = 256 + len(task.description) + len(task.result or "") + len(task.error or "")
    if task.progress:
        size += len(task.progress)
    if task.blocked_on is not None:
        size += len(task.blocked_on.question) + 64 * len(task.blocked_on.choices)
    return size


def _decision(entry: p.Decision) -> p.Decision:
    """A journal entry as the wire wants it: text fields never null (older rows may be)."""
    if entry.detail is None or entry.by is None:
        return msgspec.structs.replace(entry, detail=entry.detail or "", by=entry.by or "")
    return entry
