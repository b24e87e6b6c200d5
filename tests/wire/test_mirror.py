"""The live mirror stays equal to the daemon: late joiners, lost messages, restarts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from core.client import Changes, Client, ConnectionState
from core.model import Snapshot, TaskStatus
from core.registry import Registry
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry

Connect = Callable[..., Awaitable[Client]]


def same(client: Client, snapshot: Snapshot) -> bool:
    """The mirror holds exactly the snapshot's tasks and pending prompts."""
    mirror = client.mirror
    return (
        mirror.epoch == snapshot.epoch
        and mirror.seq == snapshot.seq
        and mirror.tasks == {t.id: t for t in snapshot.tasks}
        and mirror.prompts == {q.id: q for q in snapshot.prompts}
    )


async def test_late_joiner_sees_history_and_live_changes(
    client: Client, registry: Registry, connect: Connect
) -> None:
    early = [(await client.submit("echo", f"step {n}")).id for n in range(3)]
    await until(lambda: all(registry.get(i).status is TaskStatus.BLOCKED for i in early))
    await client.answer_task(early[0], "approve")
    late = await connect(client_name="tui")
    batches: list[Changes] = []
    await late.start_mirror(batches.append)
    await late.wait_synced()
    assert batches[0].resynced and batches[0].task_ids >= set(early)
    assert late.state is ConnectionState.LIVE
    await until(lambda: same(late, registry.snapshot()))
    ext = await client.open_task("later", lease=5)
    await ext.add_tokens(5, 7)
    await until(lambda: same(late, registry.snapshot()))
    assert late.mirror.tasks[ext.id].tokens == 12
    assert [q.task_id for q in late.mirror.pending_oldest_first()] == early[1:]
    assert any(ext.id in b.task_ids for b in batches[1:])


async def test_reader_that_misses_messages_resyncs(
    runtime_dir: Path, registry: Registry, connect: Connect
) -> None:
    # Tiny queues on both ends: a burst larger than the socket buffers loses events.
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT, pub_hwm=1):
        client = await connect(rcvhwm=1)
        batches: list[Changes] = []
        await client.start_mirror(batches.append)
        await client.wait_synced()
        task = registry.open_external("burst", lease=60)
        # The burst runs without yielding: the mirror cannot read while it lasts.
        for _ in range(20000):
            registry.add_tokens(task.id, 1, 1)
        await until(lambda: client.resync_count >= 2, what="a resync after the gap")
        await until(lambda: same(client, registry.snapshot()))
        assert client.mirror.tasks[task.id].prompt_tokens == 20000
        assert any(b.resynced for b in batches[1:])
    await registry.close()


async def test_daemon_restart_new_epoch_resyncs(
    runtime_dir: Path, registry: Registry, connect: Connect
) -> None:
    states: list[ConnectionState] = []
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        client = await connect(request_timeout=0.2, retries=2)
        await client.start_mirror(lambda c: states.append(c.state))
        await client.wait_synced()
        old = await client.submit("forever", "before the restart")
        await until(lambda: old.id in client.mirror.tasks)
    await registry.close()
    await until(lambda: client.state is ConnectionState.DISCONNECTED)
    assert ConnectionState.STALE in states  # stale first, then disconnected
    fresh = make_registry(first_id=100)
    async with Daemon(fresh, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        fresh.open_external("after the restart", lease=60)
        await until(lambda: client.state is ConnectionState.LIVE)
        await until(lambda: same(client, fresh.snapshot()))
        assert old.id not in client.mirror.tasks and 100 in client.mirror.tasks
        fresh.add_tokens(100, 3)
        await until(lambda: same(client, fresh.snapshot()))
    await fresh.close()


async def test_restart_on_new_tcp_ports_is_found_again(
    runtime_dir: Path, state_dir: Path, connect: Connect
) -> None:
    first = make_registry()
    async with Daemon(first, runtime_dir=runtime_dir, heartbeat=HEARTBEAT,
                      bind="tcp://127.0.0.1:0", state_dir=state_dir) as served:
        old_endpoint = served.connection.commands
        client = await connect(request_timeout=0.2, retries=2, state_dir=state_dir)
        await client.start_mirror()
        await client.wait_synced()
    await first.close()
    second = make_registry(first_id=50)
    async with Daemon(second, runtime_dir=runtime_dir, heartbeat=HEARTBEAT,
                      bind="tcp://127.0.0.1:0", state_dir=state_dir) as served:
        assert served.connection.commands != old_endpoint
        second.open_external("on the new port", lease=60)
        await until(lambda: same(client, second.snapshot()), timeout=10)
        assert client.state is ConnectionState.LIVE
        assert (await client.hello())["epoch"] == second.epoch
    await second.close()

