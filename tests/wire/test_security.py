"""Safe defaults: private runtime dir and files, CURVE on TCP, allow-list, loopback-only plain TCP."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.client import Client
from core.errors import BadRequest, InvalidState, Unauthorized, Unavailable
from core.registry import Registry
from core.runtime import (
    ALLOWED_CLIENTS_FILE,
    SERVER_KEYS_FILE,
    ConnectionInfo,
    KeyPair,
    connection_path,
    ensure_private_dir,
    existing_client_keys,
    load_or_create_client_keys,
    read_allowed_clients,
    read_connection,
    write_connection,
)
from core.server import Daemon
from tests.wire.conftest import HEARTBEAT

Connect = Callable[..., Awaitable[Client]]

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_runtime_dir_and_files_are_private(daemon: Daemon, runtime_dir: Path) -> None:
    assert mode(runtime_dir) == 0o700
    assert mode(connection_path(runtime_dir)) == 0o600
    for endpoint in (daemon.connection.events, daemon.connection.commands):
        assert endpoint.startswith(f"ipc://{runtime_dir}/")
        sock = Path(endpoint.removeprefix("ipc://"))
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert mode(sock) & 0o077 == 0
    info = read_connection(runtime_dir)
    assert (info.pid, info.epoch, info.server_public_key) == (
        os.getpid(), daemon.registry.epoch, None)


async def test_shutdown_removes_connection_file_and_sockets(
    registry: Registry, runtime_dir: Path
) -> None:
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT) as served:
        sockets = [Path(e.removeprefix("ipc://")) for e in
                   (served.connection.events, served.connection.commands)]
        assert connection_path(runtime_dir).exists()
        with pytest.raises(InvalidState, match="already serves"):
            await Daemon(Registry(), runtime_dir=runtime_dir).start()
    assert not connection_path(runtime_dir).exists()
    assert not any(s.exists() for s in sockets)
    with pytest.raises(Unavailable, match="no daemon running"):
        read_connection(runtime_dir)


def test_unsafe_runtime_dirs_are_refused_or_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    ensure_private_dir(loose)
    assert mode(loose) == 0o700  # readable by others: tightened
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(Unauthorized, match="writable by others"):
        ensure_private_dir(shared)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(Unauthorized, match="belongs to uid 65534"):
            ensure_private_dir(foreign)


async def test_runtime_dir_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(BadRequest, match="too long for a unix socket"):
        async with Daemon(Registry(), runtime_dir=deep):
            pass


def test_plain_tcp_only_on_loopback(runtime_dir: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(BadRequest, match="only allowed on a loopback address"):
            Daemon(Registry(), runtime_dir=runtime_dir, bind=f"tcp://{host}:7000",
                   allow_plain_tcp=True)
    with pytest.raises(BadRequest, match="tcp://HOST:PORT"):
        Daemon(Registry(), runtime_dir=runtime_dir, bind="udp://1.2.3.4:5")


async def test_plain_tcp_on_loopback_works(runtime_dir: Path, connect: Connect) -> None:
    registry = Registry()
    async with Daemon(registry, runtime_dir=runtime_dir, bind="tcp://127.0.0.1:0",
                      allow_plain_tcp=True, heartbeat=HEARTBEAT) as served:
        assert served.connection.server_public_key is None
        client = await connect()
        assert (await client.hello())["epoch"] == registry.epoch


async def raw_hello(endpoint: str, *, keys: KeyPair | None = None, server_key: str | None = None,
                    wait: float = 0.3) -> p.Reply | None:
    """A hello on a raw REQ socket; None when no reply comes within `wait` seconds."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key is not None and keys is not None:
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = keys.public.encode()
        sock.curve_secretkey = keys.secret.encode()
    try:
        sock.connect(endpoint)
        await sock.send(p.encode(p.Request(id="h", version=p.PROTOCOL_VERSION, body=p.Hello())))
        if not await sock.poll(int(wait * 1000), zmq.POLLIN):
            return None
        return p.REPLY_DECODER.decode(await sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()


def fresh_keys() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public=public.decode(), secret=secret.decode())


async def test_tcp_uses_curve_and_strangers_get_nothing(
    runtime_dir: Path, state_dir: Path, connect: Connect
) -> None:
    registry = Registry()
    async with Daemon(registry, runtime_dir=runtime_dir, bind="tcp://127.0.0.1:0",
                      state_dir=state_dir, heartbeat=HEARTBEAT) as served:
        info = served.connection
        assert info.server_public_key is not None and len(info.server_public_key) == 40
        assert mode(state_dir / SERVER_KEYS_FILE) == 0o600
        # No CURVE at all, or the wrong server key: no reply, not even an error.
        assert await raw_hello(info.commands) is None
        assert await raw_hello(info.commands, keys=fresh_keys(),
                               server_key=fresh_keys().public) is None
        wrong = ConnectionInfo(events=info.events, commands=info.commands,
                               server_public_key=fresh_keys().public)
        impostor = await connect(connection=wrong, request_timeout=0.1, retries=1)
        with pytest.raises(Unavailable, match="did not answer"):
            await impostor.hello()
        # The server key is no password: a stranger's key pair gets nothing either.
        assert await raw_hello(info.commands, keys=fresh_keys(),
                               server_key=info.server_public_key) is None
        # The allow-list was made on first use, with this user's client key only.
        mine = existing_client_keys(state_dir)
        assert mine is not None and mode(state_dir / ALLOWED_CLIENTS_FILE) == 0o600
        assert read_allowed_clients(state_dir) == {mine.public}
        assert "python -m core.runtime client-key" in (state_dir / ALLOWED_CLIENTS_FILE).read_text()
        client = await connect(state_dir=state_dir)
        await client.start_mirror()
        await client.wait_synced()
        task = await client.open_task("over curve")
        assert client.mirror.epoch == registry.epoch
        assert task.id == registry.get(task.id).id
    # The key pair is kept: a restart serves with the same public key.
    async with Daemon(Registry(), runtime_dir=runtime_dir, bind="tcp://127.0.0.1:0",
                      state_dir=state_dir) as again:
        assert again.connection.server_public_key == info.server_public_key
    await registry.close()


async def test_allow_list_admits_only_listed_clients(
    runtime_dir: Path, state_dir: Path, tmp_path: Path, connect: Connect
) -> None:
    mine = load_or_create_client_keys(tmp_path / "me")
    assert mode(tmp_path / "me" / "client_keys.json") == 0o600
    state_dir.mkdir(mode=0o700)
    (state_dir / ALLOWED_CLIENTS_FILE).write_text(f"# who may connect\n{mine.public} laptop\n")
    async with Daemon(Registry(), runtime_dir=runtime_dir, bind="tcp://127.0.0.1:0",
                      state_dir=state_dir, heartbeat=HEARTBEAT) as served:
        server_key = served.connection.server_public_key
        assert await raw_hello(served.connection.commands, keys=fresh_keys(),
                               server_key=server_key) is None
        reply = await raw_hello(served.connection.commands, keys=mine, server_key=server_key,
                                wait=2)
        assert reply is not None and reply.ok
        allowed = await connect(state_dir=tmp_path / "me")
        assert (await allowed.hello())["version"] == p.PROTOCOL_VERSION
        stranger = await connect(client_keys=fresh_keys(), request_timeout=0.1, retries=1)
        with pytest.raises(Unavailable):
            await stranger.hello()


async def test_oversized_request_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(BadRequest, match="exceeds"):
        await client.request(p.Finish(task_id=1, result="x" * (p.MAX_MESSAGE + 10)))


async def test_stale_connection_file_does_not_block_a_new_daemon(
    runtime_dir: Path, tmp_path: Path, connect: Connect
) -> None:
    # A daemon killed with SIGKILL leaves its file behind; its pid may even be alive again.
    ensure_private_dir(runtime_dir)
    stale = ConnectionInfo(events=f"ipc://{tmp_path}/gone-e", commands=f"ipc://{tmp_path}/gone-c",
                           pid=os.getpid(), epoch=1)
    write_connection(runtime_dir, stale)
    registry = Registry()
    async with Daemon(registry, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        client = await connect()
        assert (await client.hello())["epoch"] == registry.epoch


async def test_plain_tcp_on_ipv6_loopback(runtime_dir: Path, connect: Connect) -> None:
    registry = Registry()
    try:
        daemon = Daemon(registry, runtime_dir=runtime_dir, bind="tcp://[::1]:0",
                        allow_plain_tcp=True, heartbeat=HEARTBEAT)
        await daemon.start()
    except zmq.ZMQError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert daemon.connection.commands.startswith("tcp://[::1]:")
        client = await connect()
        await client.start_mirror()
        await client.wait_synced()
        assert client.mirror.epoch == registry.epoch
    finally:
        await daemon.stop()


def test_allow_list_file_format(state_dir: Path) -> None:
    state_dir.mkdir()
    hashy = "a#b" + "c" * 37  # Z85 keys may contain "#"
    (state_dir / ALLOWED_CLIENTS_FILE).write_text(f"# team\n\n{hashy}\n  {'k' * 40} ci runner\n")
    assert read_allowed_clients(state_dir) == {hashy, "k" * 40}
    (state_dir / ALLOWED_CLIENTS_FILE).write_text("short\n")
    with pytest.raises(BadRequest, match="allowed_clients:1: not a Z85"):
        read_allowed_clients(state_dir)


def test_client_key_command_prints_the_key_to_allow(tmp_path: Path) -> None:
    state = tmp_path / "elsewhere"
    env = {**os.environ, "TASKDECK_STATE_DIR": str(state)}
    done = subprocess.run([sys.executable, "-m", "core.runtime", "client-key"], env=env,
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == load_or_create_client_keys(state).public
