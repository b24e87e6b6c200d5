"""The journal: tasks, prompts and people's decisions kept in SQLite across daemon restarts.

Durability model
----------------
The database runs in WAL mode. Ordinary registry events (task created, tokens,
progress, prompt opened ...) go into an in-memory batch that is written every
`group_delay` seconds (50 ms by default) in one transaction with
`synchronous=NORMAL`: the REP loop never waits on the disk for them, and a crash
of the daemon process loses nothing already written, but a power cut may lose
the last group.

A person's decision (answer, abort) is different: the daemon calls `audit()` and
then `commit()` before it replies "ok". `commit()` writes the pending batch and
the audit rows in one transaction with `synchronous=FULL`, which in WAL mode
fsyncs the WAL before COMMIT returns. One fsync covers every frame before it, so
the groups written earlier with NORMAL become durable at the same moment. The
cost is one fsync per decision (a few milliseconds at most on local disks),
paid only on a person's action, never per event.

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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
from core.protocol import Decision
from core.runtime import default_state_dir

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Stored in `PRAGMA user_version`; a journal written by a newer taskdeck is refused."""

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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    curve_key TEXT
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
"""


class JournalError(TaskdeckError):
    """The journal file cannot be opened, read or written."""


def default_journal_path() -> Path:
    """The per-user journal file: `<state dir>/journal.sqlite3`."""
    return default_state_dir() / "journal.sqlite3"


class Journal:
    """A SQLite journal of one registry's tasks, prompts and audit trail.

    Use `Journal.open(path)`, then `attach(registry)` before `registry.restore(*load())`.
    Every method runs on the thread of the registry's event loop.
    """

    def __init__(
        self, path: Path, connection: sqlite3.Connection, *, group_delay: float = GROUP_DELAY
    ) -> None:
        self.path = path
        self.group_delay = group_delay
        self._db = connection
        self._task_codec = msgspec.msgpack.Decoder(Task)
        self._prompt_codec = msgspec.msgpack.Decoder(Prompt)
        self._encoder = msgspec.msgpack.Encoder()
        self._tasks: dict[int, Task] = {}
        self._prompts: dict[int, Prompt] = {}
        self._evicted: dict[int, float] = {}
        self._audits: list[tuple[tuple[object, ...], tuple[int, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._stop_listening: list[Callable[[], None]] = []
        self._epoch: int | None = None
        self._floor = 0
        self._warned = False
        self._closed = False
        self.commits = 0
        """Transactions written so far (group commits and durable commits)."""

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
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise JournalError(f"cannot open journal {path}: {exc}") from None
        except JournalError:
            db.close()
            raise
        return cls(path, db, group_delay=group_delay)

    # ---------------------------------------------------------------- attach

    def attach(self, registry: Registry) -> None:
        """Record every future event of `registry`; call before `registry.restore`.

        Create the registry with `Registry(first_id=journal.next_id())`: evicted tasks
        are not restored, so only the journal knows the highest id ever given.
        """
        self._epoch = registry.epoch
        self._floor = self.next_id()
        self._stop_listening.append(registry.listen(self._on_event))
        self._write(
            [("INSERT OR REPLACE INTO runs(epoch, started_at, pid) VALUES (?, ?, ?)",
              [(registry.epoch, time.time(), os.getpid())])],
            durable=False,
        )

    def _on_event(self, event: Event) -> None:
        body = event.body
        match body:
            case TaskCreated(task=task):
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
                self._tasks[task.id] = task
                self._prompts[prompt.id] = prompt
            case TasksEvicted(task_ids=ids):
                for task_id in ids:
                    self._evicted[task_id] = event.ts
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
        try:
            self._flush(durable=False)
        except JournalError:  # kept pending; the next commit retries
            log.exception("journal group commit failed")

    # ---------------------------------------------------------------- writes

    @property
    def pending(self) -> int:
        """Rows waiting for the next commit."""
        return len(self._tasks) + len(self._prompts) + len(self._evicted) + len(self._audits)

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
        """
        row = (
            time.time(),
            self._epoch,
            action,
            task_id,
            prompt_id,
            detail,
            by,
            _attr(origin, "user", str),
            _attr(origin, "host", str),
            _attr(origin, "pid", int),
            _attr(origin, "client", str),
            _attr(origin, "curve_key", str),
        )
        ids = {i for i in affected if isinstance(i, int)}
        if task_id is not None:
            ids.add(task_id)
        self._audits.append((row, tuple(sorted(ids))))

    def commit(self) -> None:
        """Write everything pending and make it durable (fsync) before returning.

        Raises:
            JournalError: the write failed; nothing pending is dropped.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush(durable=True)

    def _flush(self, *, durable: bool) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        if not self.pending:
            return
        tasks, prompts, evicted, audits = self._tasks, self._prompts, self._evicted, self._audits
        encode = self._encoder.encode
        statements: list[tuple[str, list[tuple[object, ...]]]] = []
        if tasks:
            statements.append((
                "INSERT INTO tasks(id, record, status, ended_at, parent_id) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET record=excluded.record, status=excluded.status,"
                " ended_at=excluded.ended_at, parent_id=excluded.parent_id",
                [
                    (t.id, encode(t), t.status.value, t.ended_at, t.parent_id)
                    for t in tasks.values()
                ],
            ))
        if prompts:
            statements.append((
                "INSERT INTO prompts(id, task_id, record, state) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET task_id=excluded.task_id,"
                " record=excluded.record, state=excluded.state",
                [(p.id, p.task_id, encode(p), p.state.value) for p in prompts.values()],
            ))
        if evicted:
            statements.append((
                "UPDATE tasks SET evicted_at=? WHERE id=?",
                [(ts, task_id) for task_id, ts in evicted.items()],
            ))
        self._write(statements, durable=durable, audits=audits)
        self._tasks, self._prompts, self._evicted, self._audits = {}, {}, {}, []

    def _write(
        self,
        statements: list[tuple[str, list[tuple[object, ...]]]],
        *,
        durable: bool,
        audits: Sequence[tuple[tuple[object, ...], tuple[int, ...]]] = (),
    ) -> None:
        db = self._db
        try:
            if durable:
                db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, rows in statements:
                        db.executemany(sql, rows)
                    for row, ids in audits:
                        cursor = db.execute(
                            "INSERT INTO audit(ts, epoch, action, task_id, prompt_id, detail, by,"
                            " user, host, pid, client, curve_key)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            row,
                        )
                        db.executemany(
                            "INSERT OR IGNORE INTO audit_tasks(audit_id, task_id) VALUES (?, ?)",
                            [(cursor.lastrowid, i) for i in ids],
                        )
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc}") from None
        self.commits += 1

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
            raise JournalError(f"cannot read journal {self.path}: {exc}") from None
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
            raise JournalError(f"journal {self.path} holds an unreadable record: {exc}") from None
        return list(tasks.values()), prompts

    def next_id(self) -> int:
        """The first task/prompt id never used in this journal: `Registry(first_id=...)`.

        Needed because `load()` leaves evicted tasks out, so the restored registry
        alone cannot know the highest id ever given.
        """
        self._flush(durable=False)
        row = self._db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM tasks), 0),"
            " coalesce((SELECT max(id) FROM prompts), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def task(self, task_id: int) -> tuple[Task, list[Prompt]] | None:
        """A task and its prompts as last recorded, evicted or not; None if never seen."""
        self._flush(durable=False)
        row = self._db.execute("SELECT record FROM tasks WHERE id=?", (task_id,)).fetchone()
        if row is None:
            return None
        prompts = self._db.execute(
            "SELECT record FROM prompts WHERE task_id=? ORDER BY id", (task_id,)
        ).fetchall()
        return self._task_codec.decode(row[0]), [self._prompt_codec.decode(r[0]) for r in prompts]

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
            raise JournalError(f"cannot read journal {self.path}: {exc}") from None
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
            self.commit()
        finally:
            self._closed = True
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _attr(origin: object | None, name: str, kind: type) -> object | None:
    value = getattr(origin, name, None)
    if value is None:
        return None
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
