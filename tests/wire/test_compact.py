"""Protocol 2's compact snapshot: tasks as rows, negotiated, with protocol 1 still served.

Clients must see plain `Task`s whichever form came: equal to the daemon's, printed the
same as JSON. Old clients (version 1 requests) keep getting maps; a client of a daemon
that speaks only version 1 talks version 1 to it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from core import protocol as p
from core.client import Client, SyncClient
from core.errors import VersionMismatch
from core.mirror import Mirror
from core.model import BlockedOn, BlockedReason, EndReason, Question, Task, TaskStatus
from core.registry import Registry
from core.rows import BLOCK, RowCache, encode_row
from core.runtime import connection_path, read_connection
from core.server import Daemon
from core.service import CommandService
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry
from tests.wire.test_commands import raw_request

Connect = Callable[..., Awaitable[Client]]


def full_task() -> Task:
    """A task with every field away from its default."""
    return Task(
        id=7, agent="external", description="deploy ✓", status=TaskStatus.FAILED,
        parent_id=3, session_id="s-1", key="claude:abc", created_by="planner",
        result="partial", error="boom", end_reason=EndReason.ABORTED,
        blocked_reason=BlockedReason.PROMPT,
        blocked_on=BlockedOn(prompt_id=9, question="Run it?", choices=["yes", "no"],
                             summary="rm -rf build"),
        prompt_tokens=2**53, completion_tokens=5, progress="half", external=True,
        timeout=30.5, created_at=1.5, started_at=2.5, ended_at=3.5, lease=10.0,
    )


def rows_reply(tasks: list[Task]) -> p.Reply:
    """A protocol 2 snapshot reply of `tasks`, through the bytes, as a client reads it."""
    snapshot = p.CompactSnapshot(epoch=1, seq=2, tasks=[msgspec.Raw(encode_row(t)) for t in tasks],  # type: ignore[misc]
                                 prompts=[], roots=[t.id for t in tasks], children={})
    data = p.encode(p.Reply(id="r", ok=True, result=p.CompactSnapshotResult(snapshot=snapshot)))
    return p.REPLY_DECODER.decode(data)


def request(version: int, body: p.Command = p.GetSnapshot()) -> bytes:  # noqa: B008
    return p.encode(p.Request(id=f"v{version}", version=version, body=body))


# ------------------------------------------------------------------ encoding


def test_a_row_comes_back_as_a_plain_equal_task() -> None:
    task = full_task()
    row = msgspec.msgpack.decode(encode_row(task))
    assert isinstance(row, list) and row[:3] == [7, "external", "deploy ✓"]
    assert b"description" not in encode_row(task)  # values only, no field names
    reply = rows_reply([task, Task(id=8, agent="a", description="plain")])
    assert isinstance(reply.result, p.CompactSnapshotResult)
    got = reply.result.state().tasks
    assert [type(t) for t in got] == [Task, Task]
    assert got == [task, Task(id=8, agent="a", description="plain")]
    # What `watch --json`, `ls --json` and events print is unchanged.
    assert msgspec.json.encode(got[0]) == msgspec.json.encode(task)
    assert p.encode(got[0]) == p.encode(task)


def test_rows_from_a_newer_or_older_daemon_still_read() -> None:
    values = list(msgspec.structs.astuple(full_task()))
    newer = msgspec.msgpack.encode([[*values, "a field added later"]])
    older = msgspec.msgpack.encode([[1, "demo", "first three only"]])
    decoder = msgspec.msgpack.Decoder(list[p.TaskRow])
    assert decoder.decode(newer)[0].lease == 10.0
    oldest = decoder.decode(older)[0]
    assert oldest.status is TaskStatus.QUEUED and oldest.result is None


# ------------------------------------------------------- the daemon's rows


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    reg = make_registry()
    yield reg
    await reg.close()


def decoded_rows(cache: RowCache, registry: Registry) -> list[Task]:
    rows = cache.rows(registry.tasks_by_id())
    decoded = msgspec.msgpack.decode(p.encode(rows), type=list[p.TaskRow])
    for row in decoded:
        row.__class__ = Task
    return decoded  # type: ignore[return-value]


@pytest.mark.parametrize("following", [True, False], ids=["following", "restored"])
async def test_kept_rows_follow_changes_and_eviction(registry: Registry, following: bool) -> None:
    """Following the registry, rows are kept as tasks end; without its events (tasks
    restored from a journal), each snapshot still comes out right."""
    cache = RowCache()
    if following:
        cache.follow(registry)
    done = registry.open_external("done", lease=60)
    live = registry.open_external("live", lease=60)
    registry.finish(done.id, "ok")
    assert len(cache) == (1 if following else 0)
    assert decoded_rows(cache, registry) == registry.snapshot().tasks
    assert len(cache) == 1  # only the ended task's row is kept
    registry.add_tokens(live.id, 3, 4)
    registry.set_progress(live.id, "halfway")
    assert decoded_rows(cache, registry) == registry.snapshot().tasks  # live rows are fresh
    registry.fail(live.id, "broke")
    assert decoded_rows(cache, registry) == registry.snapshot().tasks
    registry.evict([done.id])
    other = registry.open_external("same count, other task", lease=60)
    assert decoded_rows(cache, registry) == registry.snapshot().tasks
    if following:
        assert len(cache) == 1  # the evicted task's row went; the failed one's is kept
        assert cache.resets == 0
    registry.finish(other.id, "ok")
    assert decoded_rows(cache, registry) == registry.snapshot().tasks


@pytest.mark.parametrize("pack_every", [4096, 5])
async def test_packed_blocks_stay_right_through_a_seeded_workload(
    registry: Registry, pack_every: int
) -> None:
    """Trees spanning many blocks of ids end, change and leave in a random order; after
    every step the rows are exactly the registry's tasks, packed or not."""
    rng = random.Random(16)
    cache = RowCache(pack_every=pack_every)
    cache.follow(registry)
    live: list[int] = []
    for step in range(900):
        roll = rng.random()
        if roll < 0.4 or not live:
            parent = rng.choice(live) if live and rng.random() < 0.6 else None
            live.append(registry.open_external(f"task {step}", lease=60, parent_id=parent).id)
        elif roll < 0.8:
            registry.finish(rng.choice(live), f"done {step}")
        elif roll < 0.83:
            registry.abort(rng.choice(live))
        elif roll < 0.95:
            registry.add_tokens(rng.choice(live), step, 1)
        else:
            ended = [t.id for t in registry.snapshot().tasks if t.status.is_ended]
            registry.evict(rng.sample(ended, min(len(ended), 4)))
        live = [t.id for t in registry.tasks_by_id().values() if not t.status.is_ended]
        if step % 7 == 0:
            assert decoded_rows(cache, registry) == registry.snapshot().tasks, step
    assert decoded_rows(cache, registry) == registry.snapshot().tasks
    held = list(registry.tasks_by_id())
    assert len(held) > 2 * BLOCK and held[-1] - held[0] > 3 * BLOCK  # several blocks
    assert cache.resets == 0  # kept in step by the events alone


async def test_service_answers_each_version_in_its_form(registry: Registry) -> None:
    parent = registry.open_external("parent", lease=60)
    child = registry.open_external("child", lease=60, parent_id=parent.id)
    registry.open_prompt(child.id, Question(text="Go?"))
    service = CommandService(registry)
    old = msgspec.msgpack.decode(service.handle([request(1)]).reply)
    assert old["result"]["type"] == "snapshot"
    assert [t["id"] for t in old["result"]["snapshot"]["tasks"]] == [parent.id, child.id]
    assert old["result"]["snapshot"]["tasks"][1]["parent_id"] == parent.id
    new = p.REPLY_DECODER.decode(service.handle([request(2)]).reply).result
    assert isinstance(new, p.CompactSnapshotResult)
    assert new.state() == registry.snapshot()
    assert new.tree() == p.Tree(roots=[parent.id], children={parent.id: [child.id]})
    hello = msgspec.msgpack.decode(service.handle([request(1, p.Hello())]).reply)["result"]
    assert hello["version"] == 1 and hello["versions"] == [1, 2]
    _, code, message = _error(service.handle([request(3)]).reply)
    assert code == "VERSION_MISMATCH" and message.endswith("the daemon speaks 1 or 2")


def _error(reply: bytes) -> tuple[str, str, str]:
    decoded = p.REPLY_DECODER.decode(reply)
    assert not decoded.ok and decoded.error is not None
    return decoded.id, decoded.error.code, decoded.error.message


# ------------------------------------------------------ over a real daemon


def children_built_from(tasks: list[Task]) -> dict[int | None, list[int]]:
    mirror = Mirror()
    mirror.load(p.Snapshot(epoch=0, seq=0, tasks=tasks, prompts=[]))
    return {k: v for k, v in mirror.children.items() if v}


async def test_client_negotiates_rows_and_mirrors_the_daemon(
    daemon: Daemon, registry: Registry, connect: Connect
) -> None:
    roots = [registry.open_external(f"root {n}", lease=60) for n in range(3)]
    kids = [registry.open_external(f"kid {n}", lease=60, parent_id=roots[n % 2].id)
            for n in range(5)]
    for task in kids[:3]:
        registry.finish(task.id, "done")
    registry.evict([kids[0].id])
    info = read_connection(daemon.runtime_dir)
    assert (info.version, info.versions) == (1, [1, 2])  # version 1 clients still talk
    client = await connect()
    assert client.version == 2
    await client.start_mirror()
    await client.wait_synced()
    snapshot = registry.snapshot()
    assert client.mirror.tasks == {t.id: t for t in snapshot.tasks}
    assert all(type(t) is Task for t in client.mirror.tasks.values())
    assert {k: v for k, v in client.mirror.children.items() if v} == children_built_from(
        snapshot.tasks)
    later = registry.open_external("later", lease=60, parent_id=roots[2].id)
    await until(lambda: later.id in client.mirror.children[roots[2].id])
    # A version 1 request to the same daemon gets maps, as before.
    old = await raw_request(daemon.connection.commands, request(1))
    assert isinstance(old.result, p.SnapshotResult)
    assert not isinstance(old.result, p.CompactSnapshotResult)
    assert old.result.snapshot.tasks == registry.snapshot().tasks
    # And a client that speaks only version 1 mirrors the same registry.
    older = await connect(protocol_version=1)
    await older.start_mirror()
    await older.wait_synced()
    assert older.mirror.tasks == client.mirror.tasks
    assert dict(older.mirror.children) == {k: v for k, v in client.mirror.children.items() if v}


def as_version_one_daemon(runtime_dir: Path) -> None:
    """Rewrite the connection file as a version 1 daemon writes it: no `versions`."""
    path = connection_path(runtime_dir)
    info = json.loads(path.read_text())
    del info["versions"]
    path.write_text(json.dumps(info))


async def test_client_speaks_version_one_to_a_daemon_that_only_knows_it(
    registry: Registry, runtime_dir: Path, connect: Connect
) -> None:
    daemon = Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT)
    daemon.service.versions = (1,)
    async with daemon:
        as_version_one_daemon(runtime_dir)
        parent = registry.open_external("parent", lease=60)
        registry.open_external("child", lease=60, parent_id=parent.id)
        client = await connect()
        assert client.version == 1
        assert (await client.hello())["versions"] == [1]
        await client.start_mirror()
        await client.wait_synced()
        assert client.mirror.tasks == {t.id: t for t in registry.snapshot().tasks}
        assert client.mirror.children[parent.id] == [parent.id + 1]

        def blocking_snapshot() -> tuple[int, p.Snapshot]:
            with SyncClient(runtime_dir) as sync:
                return sync.version, sync.snapshot()

        assert await asyncio.to_thread(blocking_snapshot) == (1, registry.snapshot())
        refused = await raw_request(daemon.connection.commands, request(2))
        assert refused.error is not None and refused.error.code == "VERSION_MISMATCH"
        assert refused.error.message == "client speaks protocol 2, the daemon speaks 1"


async def test_a_daemon_of_only_newer_versions_is_refused_in_one_line(
    daemon: Daemon, runtime_dir: Path
) -> None:
    path = connection_path(runtime_dir)
    info = json.loads(path.read_text())
    info.update(version=3, versions=[3, 4])
    path.write_text(json.dumps(info))
    client = Client(runtime_dir)
    try:
        with pytest.raises(VersionMismatch) as caught:
            await client.connect()
    finally:
        await client.close()
    assert str(caught.value) == "the daemon speaks protocol 3 or 4, this client 1 or 2"
    with pytest.raises(VersionMismatch, match="protocol 3 or 4"):
        SyncClient(runtime_dir)
