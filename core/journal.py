"""The journal: tasks, prompts and people's decisions kept in SQLite across daemon restarts.

Over 600 lines: the schema and its upgrade, the three write paths and the reads share one
connection and one durability model, described here.

Durability model
----------------
The database runs in WAL mode. Three kinds of writes:

* A person's decision (an answer, an abort, a timeout's default answer) is
  validated by the registry, then written by `record()` *before* it is applied:
  the audit row, the task and prompt rows as the decision leaves them, and every
  pending event row go in one transaction with `synchronous=FULL`, which in WAL
  mode fsyncs the WAL before COMMIT returns. Only then does the registry change
  the prompt, resume the task, wake an in-process agent or emit the events the
  daemon publishes. If the write fails nothing is applied: the caller gets a
  `JournalError` (wire code JOURNAL_FAILED) and nobody hears of an unrecorded
  decision.
  Inside a daemon's batch of requests (`deferred_syncs()`), the group commit: the
  decision's audit row goes into the batch's open transaction before it is applied (a
  row that cannot be written still stops it). It holds the task and prompt rows as
  the decision leaves them (`audit.records`): their own tables get them later, with
  the next write of any task or prompt row, once `FOLD_AFTER` rows wait, or before a
  read, and `meta` 'folded' names the last audit row whose records are in the tables
  by then. No table row is ever newer than the records of a later audit row, so a
  journal opened after a crash first writes those records to their tables
  (`_recover`) and reads the tables as before. A decision so costs its fsync two
  pages (the audit row and its index), not five. The batch's
  `write()` commits that
  transaction with `synchronous=FULL`, before any event is published or any reply
  sent: concurrent answers share one commit and one fsync. If that commit fails, the
  batch's decisions stand in memory only and their replies say so (JOURNAL_FAILED);
  in-process agents hear them only once the commit returned, and an answer whose
  commit failed never reaches its asker (`Registry.hold_wakeups`).
* Ordinary events (task created, tokens, progress, prompt opened ...) wait in an
  in-memory batch. The daemon calls `write()` once per batch of requests it
  drains, before it sends their replies and publishes their events, and once per
  loop turn in which anything else changed: an acknowledged open, ask or finish is
  in the file before its "ok", and no client sees an event whose row is not
  written. These transactions use `synchronous=NORMAL`: a `kill -9` of the
  daemon loses none of them (the WAL is in the OS page cache); a power cut may
  lose the ones written since the last fsync. Without a daemon (library use) the
  batch is written `group_delay` seconds after its first event.
* Task and prompt ids are reserved in blocks of `ID_BLOCK`, durably, before any
  id of a block is given out: a restart starts at the end of the reserved range,
  so an id is never given twice, even when the rows of the last moments before a
  crash were lost.

The reply to each request that created, ended or decided something is kept
with the rows of its batch (`remember()`, the last `REPLIES_KEPT`): a client
retrying a request whose reply was lost in a crash gets that reply from the
restarted daemon instead of having the request applied twice. A decision's reply
goes into its own audit row, written in the same transaction (no page more for
its fsync to wait for); other replies go into the `replies` ring.

Before every write the journal checks that its file is still the one it opened
(device and inode): a journal deleted or replaced under the daemon, like one
that cannot be written, sets `failed`, is logged once, and refuses every later
write, so the daemon refuses decisions instead of acting on unrecorded ones.

Evicted tasks stay in the journal: eviction only marks their rows, and `load()`
leaves them out so a restart does not bring the whole history back into memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from core.errors import TaskdeckError
from core.model import (
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
)
from core.policy import Rule
from core.protocol import Decision, Origin
from core.runtime import default_state_dir

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)

SCHEMA_VERSION = 6
"""Stored in `PRAGMA user_version`; a journal written by a newer taskdeck is refused.

2 added `audit.question`, the `meta` table (the id reservation) and the
`replies` table (the dedupe window across restarts); 3 added `audit.summary`
(the answered question's action); 4 added the `rules` table (approval rules);
5 made a decision's commit touch fewer pages (each page is WAL bytes that its fsync
waits for): `audit` ids without AUTOINCREMENT (no `sqlite_sequence` row to rewrite;
audit rows are never deleted, so ids still never repeat), `replies` a ring of
`REPLIES_KEPT` slots rewritten in place (no unique index on the request id, no
delete of the oldest), and `audit_tasks` only for the other tasks a decision ended
(an abort's subtree): its own task is `audit.task_id`; 6 keeps a decision's remembered
reply in its audit row (`audit.request_id`, `reply`, `reply_seq`), which the decision
writes anyway, instead of a row of the `replies` ring, and the task and prompt rows as
the decision leaves them (`audit.records`), their tables updated later (`meta` 'folded'):
two pages per decision instead of five.
Older files are upgraded in place when opened (`_upgrade`).
"""

ID_BLOCK = 1000
"""Ids reserved per durable write; a restart skips what was reserved and not used."""

GROUP_DELAY = 0.05
"""Seconds between a first unwritten event and the group commit that writes it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    status TEXT NOT NULL,
    ended_at REAL,
    parent_id INTEGER,
    evicted_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks(parent_id);
CREATE TABLE IF NOT EXISTS prompts (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    record BLOB NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prompts_task ON prompts(task_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    epoch INTEGER,
    action TEXT NOT NULL,
    task_id INTEGER,
    prompt_id INTEGER,
    detail TEXT NOT NULL,
    by TEXT NOT NULL,
    user TEXT,
    host TEXT,
    pid INTEGER,
    client TEXT,
    curve_key TEXT,
    question TEXT,
    summary TEXT,
    request_id TEXT,
    reply BLOB,
    reply_seq INTEGER,
    records BLOB
);
CREATE INDEX IF NOT EXISTS audit_task ON audit(task_id);
CREATE TABLE IF NOT EXISTS audit_tasks (
    audit_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (audit_id, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_tasks_task ON audit_tasks(task_id);
CREATE TABLE IF NOT EXISTS runs (
    epoch INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    removed_at REAL
);
CREATE TABLE IF NOT EXISTS replies (
    slot INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    reply BLOB NOT NULL
);
"""
# `replies` is read whole when the daemon starts (`replies()`), never looked up by
# request id in the file: hence no index on it, and a ring (slot = seq % REPLIES_KEPT).
# A decision's reply is in its audit row instead; `reply_seq` orders both together.
_AUDIT_ADDED = ("request_id TEXT", "reply BLOB", "reply_seq INTEGER", "records BLOB")
"""Columns schema 6 added to `audit`."""

FOLD_AFTER = 128
"""Task and prompt rows (an answer has one of each) that may live in decisions' audit rows
only; a batch's commit that reaches it also writes them to their tables (see
"Durability model")."""

REPLIES_KEPT = 4096
"""Replies to state changes kept by request id, across restarts (the daemon's dedupe window)."""


class JournalError(TaskdeckError):
    """The journal file cannot be opened, read or written."""

    code = "JOURNAL_FAILED"


def default_journal_path() -> Path:
    """The per-user journal file: `<state dir>/journal.sqlite3`."""
    return default_state_dir() / "journal.sqlite3"


class Journal:
    """A SQLite journal of one registry's tasks, prompts and audit trail.

    Use `Journal.open(path)`, then `attach(registry)` before `registry.restore(*load())`.
    Every method runs on the thread of the registry's event loop.
    """

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        *,
        group_delay: float = GROUP_DELAY,
        fresh: bool = False,
        reply_seq: int = 0,
    ) -> None:
        self.path = path
        self.group_delay = group_delay
        self.fresh = fresh
        """True when the file was missing or empty when opened: history starts here."""
        self.failed: str | None = None
        """Why the journal stopped writing (deleted, replaced, unwritable); None while sound."""
        self._identity = _identity(path)
        self._db = connection
        self._task_codec = msgspec.msgpack.Decoder(Task)
        self._prompt_codec = msgspec.msgpack.Decoder(Prompt)
        self._rule_codec = msgspec.msgpack.Decoder(Rule)
        self._rules: dict[int, Rule] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._tasks: dict[int, Task] = {}
        self._prompts: dict[int, Prompt] = {}
        self._evicted: dict[int, float] = {}
        self._audits: list[tuple[tuple[object, ...], tuple[int, ...]]] = []
        self._replies: dict[str, bytes] = {}
        self._audit_replies: dict[str, int] = {}
        """Pending replies (of `_replies`) that go into a decision's audit row: its id."""
        self._unreplied: int | None = None
        """The audit row the open transaction's last decision wrote, while it has no reply."""
        self._reply_seq = reply_seq
        """The last remembered reply's place in the ring (its slot: seq % REPLIES_KEPT)."""
        self._timer: asyncio.TimerHandle | None = None
        self._stop_listening: list[Callable[[], None]] = []
        self._epoch: int | None = None
        self._floor = 0
        self._reserved = 0
        """Ids below this are reserved in the file (see `ID_BLOCK`)."""
        self._warned = False
        self._closed = False
        self.commits = 0
        """Transactions written so far (group commits and durable commits)."""
        self._deferring = False
        """Inside `deferred_syncs`: decisions join the batch's open transaction."""
        self._open = False
        """The batch's transaction (synchronous=FULL) is open; the next write commits it."""
        self._sync: str | None = "NORMAL"
        """The connection's `PRAGMA synchronous` (as `open` leaves it); None: unknown."""
        self._held: tuple[dict[int, Task], dict[int, Prompt]] = ({}, {})
        self._lazy: tuple[dict[int, Task], dict[int, Prompt]] = ({}, {})
        """Committed decisions' task and prompt rows, in their audit rows only so far."""
        self._folding = False
        """The open transaction writes the lazy rows to their tables (see `_flush`)."""
        self._records_codec = msgspec.msgpack.Decoder(tuple[list[Task], list[Prompt]])
        self._last_audit: int | None = None
        """The id of the audit row written last (`_insert`)."""
        """Task and prompt rows as written into the open transaction (see `_flush`)."""

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, path: Path | str, *, group_delay: float = GROUP_DELAY) -> Journal:
        """Open (creating if needed) the journal at `path`.

        The parent directory is created 0700 and the file 0600 (SQLite gives its
        -wal and -shm files the same mode as the database).

        Raises:
            JournalError: the file cannot be created, is not a journal, or is newer.
        """
        path = Path(path).expanduser()
        try:
            fresh = not path.exists() or path.stat().st_size == 0
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.parent.chmod(0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            path.chmod(0o600)
        except OSError as exc:
            raise JournalError(f"cannot create journal {path}: {exc.strerror}") from None
        try:
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"journal {path} was written by a newer taskdeck (schema {version})"
                )
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"journal {path}: cannot switch to WAL mode ({mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            if version < SCHEMA_VERSION:
                _upgrade(db)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # A file without the key has every decision's rows in their tables.
            db.execute("INSERT OR IGNORE INTO meta(key, value)"
                       " SELECT 'folded', coalesce(max(id), 0) FROM audit")
            db.execute("COMMIT")
            db.execute("SELECT count(*) FROM tasks").fetchone()  # a damaged file fails here
            reply_seq = max(
                int(db.execute("SELECT coalesce(max(seq), 0) FROM replies").fetchone()[0]),
                # Audit rows get their seq in id order: the newest with one has the highest.
                int(db.execute("SELECT coalesce((SELECT reply_seq FROM audit WHERE reply_seq"
                               " IS NOT NULL ORDER BY id DESC LIMIT 1), 0)").fetchone()[0]),
            )
        except sqlite3.Error as exc:
            db.close()
            raise _damaged(path, exc, "open") from None
        except JournalError:
            db.close()
            raise
        journal = cls(path, db, group_delay=group_delay, fresh=fresh, reply_seq=reply_seq)
        try:
            journal._recover()
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            db.close()
            raise _damaged(path, exc, "open") from None
        except JournalError:
            db.close()
            raise
        return journal

    def _recover(self) -> None:
        """Write the rows of decisions a stopped daemon had not folded into their tables.

        After this every table row is current, so `load()` reads the tables alone, and
        this journal's own folds may move 'folded' past those decisions.
        """
        db = self._db
        (folded,) = db.execute("SELECT value FROM meta WHERE key='folded'").fetchone()
        rows = db.execute("SELECT id, records FROM audit WHERE id > ? AND records IS NOT NULL"
                          " ORDER BY id", (folded,)).fetchall()
        if not rows:
            return
        lazy_tasks, lazy_prompts = self._lazy
        for audit_id, records in rows:
            tasks, prompts = self._records_codec.decode(records)
            lazy_tasks.update((t.id, t) for t in tasks)
            lazy_prompts.update((q.id, q) for q in prompts)
            self._last_audit = audit_id
        self._flush(durable=True, fold=True)

    # ---------------------------------------------------------------- attach

    def attach(self, registry: Registry) -> None:
        """Record every future event of `registry`; call before `registry.restore`.

        Create the registry with `Registry(first_id=journal.next_id())`: evicted tasks
        are not restored, so only the journal knows the highest id ever given.
        """
        self._epoch = registry.epoch
        self._floor = self.next_id()
        self._reserve(self._floor)
        self._stop_listening.append(registry.listen(self._on_event))
        self._write(
            [("INSERT OR REPLACE INTO runs(epoch, started_at, pid) VALUES (?, ?, ?)",
              [(registry.epoch, time.time(), os.getpid())])],
            durable=False,
        )

    def _reserve(self, first: int) -> None:
        """Durably reserve ids up to `first + ID_BLOCK` before any of them is given out.

        Raises:
            JournalError: the reservation could not be written.
        """
        limit = first + ID_BLOCK
        self._write(
            [("INSERT INTO meta(key, value) VALUES ('reserved', ?)"
              " ON CONFLICT(key) DO UPDATE SET value=max(value, excluded.value)", [(limit,)])],
            durable=True,
        )
        self._reserved = limit

    def _check_reserved(self, used: int) -> None:
        """Reserve the next block once half of this one is used (in the step that used it)."""
        if used < self._reserved - ID_BLOCK // 2 or self.failed is not None:
            return
        with contextlib.suppress(JournalError):  # logged, and `failed` says it to clients
            self._reserve(used + 1)

    def _on_event(self, event: Event) -> None:
        body = event.body
        match body:
            case TaskCreated(task=task):
                self._check_reserved(task.id)
                if task.id < self._floor and not self._warned:
                    self._warned = True
                    log.error(
                        "task id %d is already in journal %s: create the registry with "
                        "Registry(first_id=journal.next_id()) or history is overwritten",
                        task.id, self.path,
                    )
                self._tasks[task.id] = task
            case TaskChanged(task=task):
                self._tasks[task.id] = task
            case PromptOpened(task=task, prompt=prompt) | PromptClosed(task=task, prompt=prompt):
                self._check_reserved(prompt.id)
                self._tasks[task.id] = task
                self._prompts[prompt.id] = prompt
            case TasksEvicted(task_ids=ids):
                for task_id in ids:
                    self._evicted[task_id] = event.ts
        if not self._deferring:  # a batch's rows are written by its own `write()`
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the rows wait for commit() or close()
            return
        self._timer = loop.call_later(self.group_delay, self._group_commit)

    def _group_commit(self) -> None:
        self._timer = None
        with contextlib.suppress(JournalError):  # logged, and kept pending
            self._flush(durable=False)

    # ---------------------------------------------------------------- writes

    @property
    def pending(self) -> int:
        """Rows waiting for the next commit."""
        return (len(self._tasks) + len(self._prompts) + len(self._evicted) + len(self._audits)
                + len(self._replies) + len(self._rules))

    def remember(self, request_id: str, reply: bytes) -> None:
        """Queue the reply to a state change, written with the rows of its batch.

        A client whose reply was lost in a crash retries with the same request id;
        the restarted daemon (`replies()`) answers it with this reply instead of
        applying the request twice (an ask asked again, an open opened twice).
        """
        self._replies[request_id] = reply
        if self._unreplied is not None:
            # The reply to the decision just held in the open transaction (the daemon
            # remembers each request's reply as soon as it is handled): kept in that
            # decision's audit row, a page the commit writes anyway.
            self._audit_replies[request_id] = self._unreplied
            self._unreplied = None

    def replies(self) -> list[tuple[str, bytes]]:
        """The last `REPLIES_KEPT` remembered replies, oldest first, for a starting daemon."""
        self._flush(durable=False)
        try:
            rows = self._db.execute(
                "SELECT seq, request_id, reply FROM replies ORDER BY seq DESC LIMIT ?",
                (REPLIES_KEPT,),
            ).fetchall()  # the ring holds at most REPLIES_KEPT; the limit guards a bad file
            rows += self._db.execute(
                "SELECT reply_seq, request_id, reply FROM audit WHERE reply_seq IS NOT NULL"
                " ORDER BY id DESC LIMIT ?", (REPLIES_KEPT,),
            ).fetchall()  # newest first by id, which is seq order: no index needed
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None
        rows.sort()
        return [(request_id, bytes(reply)) for _seq, request_id, reply in rows[-REPLIES_KEPT:]]

    def audit(
        self,
        action: str,
        *,
        task_id: int | None,
        prompt_id: int | None,
        detail: str,
        by: str,
        origin: object | None,
        affected: Iterable[int] = (),
        question: str | None = None,
        summary: str | None = None,
    ) -> None:
        """Queue the record of a person's decision; `commit()` makes it durable.

        Args:
            action: what was done, e.g. "answer" or "abort".
            task_id: the task acted on.
            prompt_id: the prompt answered, if any.
            detail: the answer text, the reason, the ids aborted.
            by: who the registry records as acting.
            origin: where the request came from; its attributes user, host, pid,
                client and curve_key are read when present.
            affected: other tasks the decision changed (an abort's subtree), so
                `history(task_id=...)` finds the decision from each of them.
            question: the question answered, kept so the record stands alone.
            summary: the summary line of the action that question asked leave for.
        """
        self._audits.append(self._audit_entry(
            action, task_id=task_id, prompt_id=prompt_id, detail=detail, by=by, origin=origin,
            affected=affected, question=question, summary=summary))

    def _audit_entry(self, action: str, **fields: Any
                     ) -> tuple[tuple[object, ...], tuple[int, ...]]:
        """(the audit row, the other tasks it names) of one decision; `fields` as for `audit`."""
        task_id, origin = fields["task_id"], fields["origin"]
        if type(origin) is Origin:  # a request's: its fields are typed already
            who: tuple[object, ...] = (
                origin.user, origin.host, origin.pid, origin.client, origin.curve_key)
        else:
            who = (_attr(origin, "user", str), _attr(origin, "host", str),
                   _attr(origin, "pid", int), _attr(origin, "client", str),
                   _attr(origin, "curve_key", str))
        row = (
            time.time(), self._epoch, action, task_id, fields["prompt_id"], fields["detail"],
            fields["by"], *who, fields.get("question"), fields.get("summary"), None,
        )
        affected = fields.get("affected", ())
        if not affected:  # an answer's: most decisions name no other task
            return row, ()
        ids = {i for i in affected if isinstance(i, int)}
        ids.discard(task_id)  # found by `audit.task_id`: one index page less per decision
        return row, tuple(sorted(ids))

    def record(
        self,
        action: str,
        *,
        tasks: Iterable[Task] = (),
        prompts: Iterable[Prompt] = (),
        rules: Iterable[Rule] = (),
        **fields: Any,
    ) -> None:
        """Write one decision durably (fsync), before the registry applies it.

        The audit row (`fields` as for `audit()`), the task, prompt and rule rows as the
        decision leaves them, and every pending row go in one transaction: the file
        never holds an answered prompt without its audit entry, or the other way round.

        Raises:
            JournalError: not written; the decision must not be applied. Rows that
                were pending stay pending, the decision's own rows are dropped.
        """
        if self._deferring:
            self._hold_decision(self._audit_entry(action, **fields), {t.id: t for t in tasks},
                                {q.id: q for q in prompts}, {r.id: r for r in rules})
            return
        saved = dict(self._tasks), dict(self._prompts), dict(self._rules)
        for task in tasks:
            self._tasks[task.id] = task
        for prompt in prompts:
            self._prompts[prompt.id] = prompt
        for rule in rules:
            self._rules[rule.id] = rule
        self.audit(action, **fields)
        try:
            self.commit()
        except JournalError:
            self._tasks, self._prompts, self._rules = saved
            self._audits.pop()
            raise

    def _hold_decision(
        self,
        audit: tuple[tuple[object, ...], tuple[int, ...]],
        tasks: dict[int, Task],
        prompts: dict[int, Prompt],
        rules: dict[int, Rule],
    ) -> None:
        """Write one decision's rows into the batch's open transaction (see `record`).

        Only its own rows: what is pending goes with the batch's `write()`, less any
        older version of these rows (the decision's are newer).
        """
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        row, ids = audit
        # The task and prompt rows go into the audit row (one page), their tables later.
        records = self._encoder.encode((list(tasks.values()), list(prompts.values())))
        self._write(self._rows({}, {}, rules), durable=True,
                    audits=((row[:-1] + (records,), ids),), hold=True)
        self._unreplied = self._last_audit
        held_tasks, held_prompts = self._held
        held_tasks.update(tasks)
        held_prompts.update(prompts)
        for pending, written in ((self._tasks, tasks), (self._prompts, prompts),
                                 (self._rules, rules)):
            for key in written:
                pending.pop(key, None)

    @contextlib.contextmanager
    def deferred_syncs(self) -> Iterator[None]:
        """Within: `record()` adds each decision to one open transaction; `write()` commits it.

        The daemon drains a batch of requests inside and calls `write()` before anything
        of the batch leaves the process; leaving without it commits here, so a decision
        written inside is never left uncommitted. Events inside arm no `group_delay`
        timer (the batch's write comes first; arming and cancelling one woke the
        daemon's event loop after every batch, docs/BENCHMARKS.md).
        """
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._open:
                with contextlib.suppress(JournalError):  # logged; `failed` says it to clients
                    self._flush(durable=True)
            if self.pending:  # the batch's write failed or never came: retry later
                self._schedule()

    def commit(self) -> None:
        """Write everything pending and make it durable (fsync) before returning.

        Raises:
            JournalError: the write failed; nothing pending is dropped.
        """
        self.write(durable=True)

    def write(self, *, durable: bool = False) -> None:
        """Write everything pending now; without an fsync unless `durable`.

        Without one a crash of the process loses none of it, a power cut may. The
        daemon calls it before it replies to a batch of requests and before it
        publishes events, so no client hears of a change whose row is not written.

        Raises:
            JournalError: the write failed; nothing pending is dropped.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush(durable=durable)

    def _flush(self, *, durable: bool, hold: bool = False, fold: bool = False) -> None:
        """Write the pending rows; `hold` leaves them in an open transaction (see `record`);
        `fold` also writes decisions' rows that are in their audit rows only."""
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        lazy_tasks, lazy_prompts = self._lazy
        fold = fold or not self._deferring  # a batch folds only when it must (below)
        if not self.pending and not self._open and not (fold and (lazy_tasks or lazy_prompts)):
            return
        tasks, prompts, evicted, audits = self._tasks, self._prompts, self._evicted, self._audits
        replies = self._replies
        held_tasks, held_prompts = self._held
        if held_tasks or held_prompts:
            # A decision wrote its task and prompt as it leaves them into the open
            # transaction; the events of applying it carry the same rows again: skip them.
            tasks = {i: t for i, t in tasks.items() if held_tasks.get(i) != t}
            prompts = {i: q for i, q in prompts.items() if held_prompts.get(i) != q}
        lazy = len(lazy_tasks) + len(lazy_prompts) + len(held_tasks) + len(held_prompts)
        # Folded whenever a task or prompt row is written anyway: no table row is ever
        # newer than the records of an audit row after 'folded' (`_recover` relies on it).
        self._folding = bool(lazy) and (fold or bool(tasks) or bool(prompts) or bool(evicted)
                                        or lazy >= FOLD_AFTER)
        if self._folding:
            tasks = {**lazy_tasks, **held_tasks, **tasks}
            prompts = {**lazy_prompts, **held_prompts, **prompts}
        statements = self._rows(tasks, prompts, self._rules)
        if evicted:
            statements.append((
                "UPDATE tasks SET evicted_at=? WHERE id=?",
                [(ts, task_id) for task_id, ts in evicted.items()],
            ))
        seq = self._reply_seq
        if replies:
            statements.extend(self._reply_rows(replies, seq))
        try:
            self._write(statements, durable=durable, audits=audits, hold=hold)
        finally:
            folded, self._folding = self._folding, False
        if folded:
            lazy_tasks.clear()
            lazy_prompts.clear()
        self._reply_seq = seq + len(replies)
        if self._open:
            held_tasks.update(tasks)
            held_prompts.update(prompts)
        self._tasks, self._prompts, self._evicted, self._audits = {}, {}, {}, []
        self._replies, self._rules, self._audit_replies = {}, {}, {}

    def _reply_rows(
        self, replies: dict[str, bytes], seq: int
    ) -> list[tuple[str, list[tuple[object, ...]]]]:
        """The statements that write these replies, numbered from `seq + 1`: a decision's
        into its audit row (in the open transaction), the others into the ring."""
        in_audit = self._audit_replies if self._open else {}
        ring: list[tuple[object, ...]] = []
        audit: list[tuple[object, ...]] = []
        for n, (request_id, reply) in enumerate(replies.items(), seq + 1):
            audit_id = in_audit.get(request_id)
            if audit_id is None:
                ring.append((n % REPLIES_KEPT, n, request_id, reply))
            else:
                audit.append((request_id, reply, n, audit_id))
        statements: list[tuple[str, list[tuple[object, ...]]]] = []
        if audit:
            statements.append((
                "UPDATE audit SET request_id=?, reply=?, reply_seq=? WHERE id=?", audit))
        if ring:
            statements.append((
                "INSERT INTO replies(slot, seq, request_id, reply) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(slot) DO UPDATE SET seq=excluded.seq,"
                " request_id=excluded.request_id, reply=excluded.reply",
                ring,
            ))
        return statements

    def _rows(
        self, tasks: dict[int, Task], prompts: dict[int, Prompt], rules: dict[int, Rule]
    ) -> list[tuple[str, list[tuple[object, ...]]]]:
        """The statements that write these task, prompt and rule rows."""
        encode = self._encoder.encode
        statements: list[tuple[str, list[tuple[object, ...]]]] = []
        if tasks:
            statements.append((
                "INSERT INTO tasks(id, record, status, ended_at, parent_id) VALUES (?, ?, ?, ?, ?)"
                # A task's parent never changes: leaving parent_id out of the update
                # leaves the tasks_parent index (one more page to sync) untouched.
                " ON CONFLICT(id) DO UPDATE SET record=excluded.record, status=excluded.status,"
                " ended_at=excluded.ended_at",
                [
                    (t.id, encode(t), t.status.value, t.ended_at, t.parent_id)
                    for t in tasks.values()
                ],
            ))
        if prompts:
            statements.append((
                "INSERT INTO prompts(id, task_id, record, state) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET record=excluded.record, state=excluded.state",
                [(p.id, p.task_id, encode(p), p.state.value) for p in prompts.values()],
            ))
        if rules:
            statements.append((
                "INSERT OR REPLACE INTO rules(id, record, removed_at) VALUES (?, ?, ?)",
                [(r.id, encode(r), r.removed_at) for r in rules.values()],
            ))
        return statements

    def _write(
        self,
        statements: list[tuple[str, list[tuple[object, ...]]]],
        *,
        durable: bool,
        audits: Sequence[tuple[tuple[object, ...], tuple[int, ...]]] = (),
        hold: bool = False,
    ) -> None:
        """Write in one transaction; with `hold`, leave it open for the batch's `write()`.

        An open transaction is always a durable one (it holds decisions), so it is
        committed with synchronous=FULL whatever `durable` says here.
        """
        if self.failed is not None:
            self._abandon()
            raise JournalError(self.failed)
        if _identity(self.path) != self._identity:
            self._abandon()
            self._fail(
                f"journal {self.path} was deleted or replaced while the daemon ran; "
                "decisions are refused until the daemon is restarted"
            )
        db = self._db
        batch = hold or self._open  # a batch's transaction: its earlier decisions apply
        durable = durable or self._open
        try:
            if not self._open:
                sync = "FULL" if durable else "NORMAL"
                if self._sync != sync:  # set when it changes: decisions often come in a row
                    self._sync = None  # unknown until the pragma succeeds
                    db.execute(f"PRAGMA synchronous={sync}")
                    self._sync = sync
                db.execute("BEGIN IMMEDIATE")
                self._open = True
            try:
                self._insert(statements, audits)
                if not hold:
                    db.execute("COMMIT")
                    self._open = False
                    self._forget_held(committed=True)
            except BaseException as exc:
                # Nothing of this transaction stands: rows the batch held already are
                # lost with it, and the journal fails, so their replies say so. Not only
                # on a disk's error: decisions that already apply were not recorded,
                # whatever the cause, and must not be heard as if they were.
                self._abandon()
                if batch and isinstance(exc, Exception) and not isinstance(exc, sqlite3.Error):
                    self._fail(
                        f"cannot write journal {self.path}: {exc!r}; decisions are refused "
                        "until the daemon is restarted"
                    )
                raise
        except sqlite3.Error as exc:
            self._fail(
                f"cannot write journal {self.path}: {exc}; decisions are refused until "
                "the daemon is restarted with a writable journal"
            )
        if not self._open:
            self.commits += 1

    def _abandon(self) -> None:
        """Roll back the batch's open transaction, if any (its write failed)."""
        if self._open:
            self._open = False
            self._forget_held()
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _forget_held(self, *, committed: bool = False) -> None:
        """The open transaction ended: what it held is committed or gone.

        Committed decisions' rows that the transaction did not fold into their tables
        are in their audit rows only: `_lazy` keeps them for a later fold.
        """
        if committed and not self._folding:
            for lazy, held in zip(self._lazy, self._held, strict=True):
                lazy.update(held)  # type: ignore[attr-defined]
        for held in self._held:
            held.clear()
        self._unreplied = None
        self._audit_replies.clear()  # audit ids of this transaction: committed or gone

    def _insert(
        self,
        statements: list[tuple[str, list[tuple[object, ...]]]],
        audits: Sequence[tuple[tuple[object, ...], tuple[int, ...]]],
    ) -> None:
        db = self._db
        for sql, rows in statements:
            db.executemany(sql, rows)
        for row, ids in audits:
            cursor = db.execute(
                "INSERT INTO audit(ts, epoch, action, task_id, prompt_id, detail, by,"
                " user, host, pid, client, curve_key, question, summary, records)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            self._last_audit = cursor.lastrowid
            if ids:  # an abort's other tasks; most decisions have none
                db.executemany(
                    "INSERT OR IGNORE INTO audit_tasks(audit_id, task_id) VALUES (?, ?)",
                    [(cursor.lastrowid, i) for i in ids],
                )
        if self._folding:  # every audit row so far has its records in the tables now
            db.execute("UPDATE meta SET value=? WHERE key='folded'", (self._last_audit,))

    def _fail(self, why: str) -> NoReturn:
        """Stop writing for good, say why once in the log, and raise."""
        if self.failed is None:
            self.failed = why
            log.error("%s", why)
        raise JournalError(why)

    # ----------------------------------------------------------------- reads

    def load(self) -> tuple[list[Task], list[Prompt]]:
        """Tasks and prompts to restore on start, for `registry.restore(*journal.load())`.

        Evicted tasks stay out, and so do the descendants of an evicted task.

        Raises:
            JournalError: the file cannot be read or holds a record this version cannot decode.
        """
        self._flush(durable=False)
        try:
            rows = self._db.execute(
                "SELECT id, record, parent_id, evicted_at FROM tasks ORDER BY id"
            ).fetchall()
            prompt_rows = self._db.execute(
                "SELECT task_id, record FROM prompts ORDER BY id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None
        tasks: dict[int, Task] = {}
        dropped: set[int] = set()
        try:
            for task_id, record, parent_id, evicted_at in rows:
                if evicted_at is not None or parent_id in dropped:
                    dropped.add(task_id)
                    continue
                tasks[task_id] = self._task_codec.decode(record)
            prompts = [
                self._prompt_codec.decode(record)
                for task_id, record in prompt_rows
                if task_id in tasks
            ]
        except msgspec.DecodeError as exc:
            raise _damaged(self.path, exc) from None
        return list(tasks.values()), prompts

    def rules(self) -> tuple[list[Rule], int]:
        """The rules in force (not removed), and the first rule id never used:
        `registry.restore_rules(*journal.rules())`.

        Raises:
            JournalError: the file cannot be read or holds a rule this version cannot decode.
        """
        self._flush(durable=False)
        try:
            rows = self._db.execute(
                "SELECT record FROM rules WHERE removed_at IS NULL ORDER BY id").fetchall()
            top = self._db.execute("SELECT coalesce(max(id), 0) + 1 FROM rules").fetchone()[0]
            return [self._rule_codec.decode(row[0]) for row in rows], int(top)
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise _damaged(self.path, exc) from None

    def next_id(self) -> int:
        """The first task/prompt id never used in this journal: `Registry(first_id=...)`.

        Needed because `load()` leaves evicted tasks out, so the restored registry
        alone cannot know the highest id ever given.
        """
        self._flush(durable=False)
        try:
            row = self._db.execute(
                "SELECT max(coalesce((SELECT max(id) FROM tasks), 0),"
                " coalesce((SELECT max(id) FROM prompts), 0)) + 1,"
                " coalesce((SELECT value FROM meta WHERE key='reserved'), 1)"
            ).fetchone()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None
        return max(int(row[0]), int(row[1]))

    def task(self, task_id: int) -> tuple[Task, list[Prompt]] | None:
        """A task and its prompts as last recorded, evicted or not; None if never seen."""
        self._flush(durable=False, fold=True)
        try:
            row = self._db.execute("SELECT record FROM tasks WHERE id=?", (task_id,)).fetchone()
            if row is None:
                return None
            prompts = self._db.execute(
                "SELECT record FROM prompts WHERE task_id=? ORDER BY id", (task_id,)
            ).fetchall()
            return (
                self._task_codec.decode(row[0]),
                [self._prompt_codec.decode(r[0]) for r in prompts],
            )
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise _damaged(self.path, exc) from None

    def history(self, *, task_id: int | None = None, limit: int | None = None) -> list[Decision]:
        """Decisions oldest first (the last `limit` of them), all or those touching one task.

        A task's decisions include aborts of an ancestor that ended it.
        """
        self._flush(durable=False)
        names = Decision.__struct_fields__  # the audit table has a column for each
        columns = ", ".join(f"a.{name}" for name in names)
        if task_id is None:
            sql = f"SELECT {columns} FROM audit a"
            args: tuple[object, ...] = ()
        else:
            sql = (
                f"SELECT {columns} FROM audit a WHERE a.task_id=? OR a.id IN"
                " (SELECT audit_id FROM audit_tasks WHERE task_id=?)"
            )
            args = (task_id, task_id)
        sql += " ORDER BY a.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args += (max(0, limit),)
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _damaged(self.path, exc) from None
        return [Decision(**dict(zip(names, row, strict=True))) for row in reversed(rows)]

    # ----------------------------------------------------------------- close

    def detach(self) -> None:
        """Stop recording registry events (what is pending still waits for `commit()`).

        Detach before `registry.close()` when the daemon stops, so in-process tasks
        cut short by the shutdown are recorded as live and end failed/restarted
        on the next start, instead of looking aborted by somebody.
        """
        for stop in self._stop_listening:
            stop()
        self._stop_listening.clear()

    def close(self) -> None:
        """Stop listening, write what is pending (durably) and close the file."""
        if self._closed:
            return
        self.detach()
        try:
            if self.failed is None:
                self.commit()
        finally:
            self._closed = True
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a file of an older schema (or an empty one) to `SCHEMA_VERSION`, in the
    caller's transaction; `_SCHEMA` then creates whatever is still missing."""
    tables = {row[0]: row[1] for row in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='table'")}
    if "audit" in tables:
        columns = _columns(db, "audit")
        for added in ("question", "summary"):  # written by schema 1 or 2
            if added not in columns:
                db.execute(f"ALTER TABLE audit ADD COLUMN {added} TEXT")
        if "AUTOINCREMENT" in tables["audit"].upper():  # schema 1-4: rebuilt without
            names = ("id, ts, epoch, action, task_id, prompt_id, detail, by, user, host, pid,"
                     " client, curve_key, question, summary")
            db.execute("DROP INDEX IF EXISTS audit_task")
            db.execute("ALTER TABLE audit RENAME TO audit_before_5")
            db.execute(_table_sql("audit"))
            db.execute(f"INSERT INTO audit({names}) SELECT {names} FROM audit_before_5")
            db.execute("DROP TABLE audit_before_5")
        columns = _columns(db, "audit")
        for added in _AUDIT_ADDED:  # schema 1-5: a decision's reply and rows lived elsewhere
            if added.split()[0] not in columns:
                db.execute(f"ALTER TABLE audit ADD COLUMN {added}")
    if "audit_tasks" in tables:  # a decision's own task is in its audit row
        db.execute("DELETE FROM audit_tasks WHERE EXISTS (SELECT 1 FROM audit WHERE"
                   " audit.id = audit_tasks.audit_id AND audit.task_id = audit_tasks.task_id)")
    if "replies" in tables and "slot" not in _columns(db, "replies"):  # schema 2-4: by seq
        kept = db.execute("SELECT request_id, reply FROM replies ORDER BY seq DESC LIMIT ?",
                          (REPLIES_KEPT,)).fetchall()
        db.execute("DROP TABLE replies")
        db.execute(_table_sql("replies"))
        db.executemany(
            "INSERT INTO replies(slot, seq, request_id, reply) VALUES (?, ?, ?, ?)",
            [(seq % REPLIES_KEPT, seq, request_id, reply)
             for seq, (request_id, reply) in enumerate(reversed(kept), 1)],
        )
    if "sqlite_sequence" in tables:
        db.execute("DELETE FROM sqlite_sequence WHERE name IN ('audit', 'replies')")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _table_sql(name: str) -> str:
    """The `CREATE TABLE` statement of `name` in `_SCHEMA`."""
    for statement in _SCHEMA.split(";"):
        if f"CREATE TABLE IF NOT EXISTS {name} (" in statement:
            return statement
    raise KeyError(name)


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file, None when it is gone: tells a deleted or replaced journal."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _damaged(path: Path, exc: Exception, verb: str = "read") -> JournalError:
    return JournalError(
        f"cannot {verb} journal {path}: damaged or not a journal ({exc}); move it aside "
        "to start with an empty history, or restore it from a backup"
    )


def _attr(origin: object | None, name: str, kind: type) -> object | None:
    value = getattr(origin, name, None)
    if value is None:
        return None
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
