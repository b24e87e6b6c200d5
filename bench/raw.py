"""Raw pyzmq baselines: PUB/SUB throughput and REQ/REP echo latency, each side in its own process.

These are the best this machine does with the same transport, the same message
sizes and msgspec coding, and none of taskdeck's work (registry, envelopes, mirror).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from bench import spawn_context

Transport = str
""""ipc" or "tcp"."""

END = b"end"
PROBE = b"probe"


def _endpoint(transport: Transport, where: Path) -> str:
    if transport == "ipc":
        return f"ipc://{where / 'raw.sock'}"
    return "tcp://127.0.0.1:0"


def _curve_server(sock: zmq.Socket, keys: tuple[bytes, bytes] | None) -> None:
    if keys is not None:
        public, secret = keys
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True


def _curve_client(sock: zmq.Socket, server_public: bytes | None) -> None:
    if server_public is not None:
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret


# --------------------------------------------------------------- PUB / SUB


def _publisher(
    endpoint: str, count: int, sample: bytes, keys: tuple[bytes, bytes] | None, conn: Connection
) -> None:
    """Bind, wait for the subscriber, then encode and send `count` copies of `sample`'s message."""
    from core.model import Event

    event = msgspec.msgpack.decode(sample, type=Event)
    encode = msgspec.msgpack.Encoder().encode
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0  # never drop: the baseline is the pipe's full rate
    pub.linger = 1000
    _curve_server(pub, keys)
    pub.bind(endpoint)
    conn.send(pub.getsockopt_string(zmq.LAST_ENDPOINT))
    while not conn.poll(0.005):  # slow joiner: probe until the subscriber has one
        pub.send_multipart([PROBE, b""])
    conn.recv()
    send = pub.send_multipart
    start = time.perf_counter()
    for _ in range(count):
        send([b"event", encode(event)])
    send([END, b""])
    conn.send(start)
    conn.recv()
    pub.close()
    ctx.term()


def _subscriber(endpoint: str, server_public: bytes | None, conn: Connection) -> None:
    """Receive and decode every message until the end marker; report when the last arrived."""
    from core.model import Event

    decode = msgspec.msgpack.Decoder(Event).decode
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.linger = 0
    _curve_client(sub, server_public)
    sub.connect(endpoint)
    sub.subscribe(b"")
    while sub.recv_multipart()[0] != PROBE:
        pass
    conn.send("ready")
    recv = sub.recv_multipart
    received = 0
    while True:
        topic, data = recv()
        if topic == END:
            break
        if topic == PROBE:
            continue
        decode(data)
        received += 1
    conn.send((time.perf_counter(), received))
    sub.close()
    ctx.term()


def pubsub(transport: Transport, *, curve: bool, count: int, sample: bytes) -> dict[str, Any]:
    """Messages per second from a PUB process to a SUB process that decodes each one.

    Args:
        transport: "ipc" or "tcp" (loopback).
        curve: encrypt with CURVE (TCP as taskdeck serves it) or not.
        count: messages to send.
        sample: one encoded `Event` of the size to compare with; re-encoded per send.

    Returns:
        `events_s`, `received`, `seconds`, `size`.
    """
    ctx = spawn_context()
    keys = zmq.curve_keypair() if curve else None
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        pub_conn, pub_child = ctx.Pipe()
        sub_conn, sub_child = ctx.Pipe()
        publisher = ctx.Process(
            target=_publisher,
            args=(_endpoint(transport, Path(tmp)), count, sample, keys, pub_child),
            daemon=True,
        )
        publisher.start()
        try:
            endpoint = _recv(pub_conn, 30)
            subscriber = ctx.Process(
                target=_subscriber,
                args=(endpoint, keys[0] if keys else None, sub_child),
                daemon=True,
            )
            subscriber.start()
            try:
                _recv(sub_conn, 30)  # the subscriber has seen a probe
                pub_conn.send("go")
                start = _recv(pub_conn, 300)
                end, received = _recv(sub_conn, 300)
                pub_conn.send("done")
            finally:
                subscriber.join(10)
                if subscriber.is_alive():
                    subscriber.kill()
        finally:
            publisher.join(10)
            if publisher.is_alive():
                publisher.kill()
    seconds = end - start
    return {
        "events_s": received / seconds,
        "received": received,
        "seconds": seconds,
        "size": len(sample),
    }


# --------------------------------------------------------------- REQ / REP


def _replier(
    endpoint: str,
    reply: bytes,
    keys: tuple[bytes, bytes] | None,
    use_asyncio: bool,
    reader: bool,
    conn: Connection,
) -> None:
    """A REP socket that answers every request with `reply` until it gets b"stop".

    With `use_asyncio`, a zmq.asyncio ROUTER in an event loop instead; with `reader`, a
    plain ROUTER drained from an event loop's reader on its FD, as the daemon serves.
    """
    if use_asyncio:
        asyncio.run(_async_replier(endpoint, reply, keys, conn))
        return
    if reader:
        asyncio.run(_reader_replier(endpoint, reply, keys, conn))
        return
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.linger = 0
    _curve_server(rep, keys)
    rep.bind(endpoint)
    conn.send(rep.getsockopt_string(zmq.LAST_ENDPOINT))
    while True:
        msg = rep.recv()
        if msg == b"stop":
            rep.send(b"")
            break
        rep.send(reply)
    rep.close()
    ctx.term()


async def _async_replier(
    endpoint: str, reply: bytes, keys: tuple[bytes, bytes] | None, conn: Connection
) -> None:
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    _curve_server(router, keys)
    router.bind(endpoint)
    conn.send(router.getsockopt_string(zmq.LAST_ENDPOINT))
    while True:
        frames = await router.recv_multipart()
        if frames[-1] == b"stop":
            await router.send_multipart([*frames[:-1], b""])
            break
        router.send_multipart([*frames[:-1], reply], zmq.NOBLOCK)
    router.close()
    ctx.term()


async def _reader_replier(
    endpoint: str, reply: bytes, keys: tuple[bytes, bytes] | None, conn: Connection
) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    _curve_server(router, keys)
    router.bind(endpoint)
    conn.send(router.getsockopt_string(zmq.LAST_ENDPOINT))
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    pollin = int(zmq.POLLIN)

    def drain() -> None:
        while router.getsockopt(zmq.EVENTS) & pollin:
            frames = router.recv_multipart(zmq.NOBLOCK)
            if frames[-1] == b"stop":
                router.send_multipart([*frames[:-1], b""], zmq.NOBLOCK)
                if not stopped.done():
                    stopped.set_result(None)
                continue
            router.send_multipart([*frames[:-1], reply], zmq.NOBLOCK)

    fd = router.getsockopt(zmq.FD)
    loop.add_reader(fd, drain)
    drain()
    await stopped
    loop.remove_reader(fd)
    router.close()
    ctx.term()


def _requester(
    endpoint: str,
    request: bytes,
    count: int,
    use_asyncio: bool,
    server_public: bytes | None,
    conn: Connection,
) -> None:
    """Time `count` sequential round trips (after a warm-up) and send back the latencies."""
    ctx = zmq.asyncio.Context() if use_asyncio else zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.linger = 0
    _curve_client(req, server_public)
    req.connect(endpoint)
    latencies: list[float] = []
    warmup = max(10, count // 10)
    if use_asyncio:

        async def run() -> None:
            for i in range(warmup + count):
                t0 = time.perf_counter()
                await req.send(request)
                await req.poll(2500, zmq.POLLIN)  # as a Lazy Pirate client waits
                await req.recv()
                if i >= warmup:
                    latencies.append(time.perf_counter() - t0)
            await req.send(b"stop")
            await req.recv()

        asyncio.run(run())
    else:
        for i in range(warmup + count):
            t0 = time.perf_counter()
            req.send(request)
            req.recv()
            if i >= warmup:
                latencies.append(time.perf_counter() - t0)
        req.send(b"stop")
        req.recv()
    req.close()
    ctx.term()
    conn.send(latencies)


def reqrep(
    transport: Transport,
    *,
    request: bytes,
    reply: bytes,
    count: int,
    use_asyncio: bool = False,
    reader: bool = False,
    curve: bool = False,
) -> list[float]:
    """Latencies (s) of `count` REQ/REP round trips between two processes.

    Args:
        transport: "ipc" or "tcp".
        request: bytes the REQ side sends (the size of a taskdeck request).
        reply: bytes the REP side answers (the size of a taskdeck reply).
        count: round trips timed (after a warm-up of a tenth of them).
        use_asyncio: both sides in asyncio event loops with zmq.asyncio (a ROUTER
            answering, a REQ polling then receiving).
        reader: a blocking REQ, and a plain ROUTER drained from an asyncio loop's reader
            on its FD: the floor of taskdeck's daemon with its `SyncClient`.
        curve: encrypt with CURVE.
    """
    ctx = spawn_context()
    keys = zmq.curve_keypair() if curve else None
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-") as tmp:
        rep_conn, rep_child = ctx.Pipe()
        req_conn, req_child = ctx.Pipe()
        replier = ctx.Process(
            target=_replier,
            args=(_endpoint(transport, Path(tmp)), reply, keys, use_asyncio, reader, rep_child),
            daemon=True,
        )
        replier.start()
        try:
            endpoint = _recv(rep_conn, 30)
            requester = ctx.Process(
                target=_requester,
                args=(endpoint, request, count, use_asyncio, keys[0] if keys else None, req_child),
                daemon=True,
            )
            requester.start()
            try:
                latencies = _recv(req_conn, 300)
            finally:
                requester.join(10)
                if requester.is_alive():
                    requester.kill()
        finally:
            replier.join(10)
            if replier.is_alive():
                replier.kill()
    return latencies


def _recv(conn: Connection, timeout: float) -> Any:
    """The next message from a child, or TimeoutError if it says nothing in time."""
    if not conn.poll(timeout):
        raise TimeoutError(f"benchmark process silent for {timeout:g}s")
    return conn.recv()
