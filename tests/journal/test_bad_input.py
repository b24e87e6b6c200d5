"""Over 10,000 malformed and hostile requests: each gets an error, the daemon lives, state holds."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from core import protocol as p
from core.context import AgentContext
from core.assembly import Assembly
from core.model import TaskStatus
from core.registry import Registry
from tests.journal.hostile import Target, generate
from tests.support import until

REPLY_WAIT_MS = 5000
"""How long one hostile request may wait for its reply before the test fails."""


async def forever(ctx: AgentContext) -> str:
    await asyncio.Event().wait()
    return ""


async def quick(ctx: AgentContext) -> str:
    return "done"


def request(rid: str, body: p.Command) -> bytes:
    origin = p.Origin(user="tester", host="here", pid=1, client="test")
    return p.encode(p.Request(id=rid, version=p.PROTOCOL_VERSION, body=body, origin=origin))


async def roundtrip(sock: zmq.asyncio.Socket, frames: list[bytes]) -> list[bytes]:
    await sock.send_multipart(frames)
    if not await sock.poll(REPLY_WAIT_MS):
        raise AssertionError(f"no reply within {REPLY_WAIT_MS} ms to {frames[-1][:80]!r}")
    return await sock.recv_multipart()


async def test_hostile_requests(tmp_path: Path, figures: dict) -> None:
    ctx = zmq.asyncio.Context()
    deck = Assembly(
        lambda first_id: Registry(agents={"forever": forever, "quick": quick}, max_concurrent=2,
                                  first_id=first_id),
        runtime_dir=tmp_path / "run", journal=tmp_path / "state" / "journal.sqlite3",
    )
    try:
        async with deck:
            registry, journal, daemon = deck.registry, deck.journal, deck.daemon
            assert journal is not None and daemon is not None
            req = ctx.socket(zmq.REQ)
            req.setsockopt(zmq.LINGER, 0)
            req.connect(daemon.connection.commands)

            # Some live state to aim at: none of it may change.
            original = request("seed-open", p.Open(description="deploy", lease=600))
            [seed_reply] = await roundtrip(req, [original])
            external = p.REPLY_DECODER.decode(seed_reply).result.task.id
            prompt = registry.open_prompt(external, "Deploy?")
            done = registry.open_external("old", lease=600)
            registry.finish(done.id, "ok")
            running = registry.submit("forever", "busy")
            await until(lambda: registry.get(running.id).status is TaskStatus.IN_PROGRESS)
            journal.commit()
            target = Target(
                external=external, prompt=prompt.id, finished=done.id,
                in_process=running.id, replay_id="seed-open",
            )
            before = registry.snapshot()
            decisions_before = len(journal.history())

            hostile = generate(6, target, original)
            kinds: collections.Counter[str] = collections.Counter()
            codes: collections.Counter[str] = collections.Counter()
            started = time.perf_counter()
            for item in hostile:
                [raw] = await roundtrip(req, item.frames)
                kinds[item.kind] += 1
                if item.replay:
                    assert raw == seed_reply, "a replayed request id was applied again"
                    continue
                reply = p.REPLY_DECODER.decode(raw)
                assert not reply.ok, (item.kind, item.frames[0][:200], reply)
                assert reply.error.code in _CODES, reply.error
                assert reply.error.message, reply
                assert len(reply.error.message) < 2000, "error messages stay readable"
                codes[reply.error.code] += 1

            # Multi-frame and envelope-less messages, which a REQ socket cannot send.
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(daemon.connection.commands)
            odd_frames = [
                [b"", b"a", b"b"],
                [b"", original, original],
                [b"", b""],
                [b"no delimiter"],
                [b"", b"\xc1"],
            ]
            for i in range(200):
                frames = odd_frames[i % len(odd_frames)]
                *_, raw = await roundtrip(dealer, frames)
                reply = p.REPLY_DECODER.decode(raw)
                assert not reply.ok and reply.error.code == "BAD_REQUEST", reply
                kinds["multi-frame / no envelope"] += 1
            dealer.close()
            elapsed = time.perf_counter() - started
            total = sum(kinds.values())
            assert total >= 10_000

            # Over the transport's size cap: the peer is cut off, the daemon carries on.
            big = ctx.socket(zmq.REQ)
            big.setsockopt(zmq.LINGER, 0)
            big.connect(daemon.connection.commands)
            await big.send(b"\x00" * (p.MAX_MESSAGE + 1))
            big.close()

            # Alive, answering, and nothing changed.
            [raw] = await roundtrip(req, [request("after-hello", p.Hello())])
            assert p.REPLY_DECODER.decode(raw).ok
            [raw] = await roundtrip(req, [request("after-snapshot", p.GetSnapshot())])
            after = p.REPLY_DECODER.decode(raw).result.state()
            assert msgspec.to_builtins(after) == msgspec.to_builtins(before)
            assert registry.snapshot() == before
            assert registry.get_prompt(prompt.id).state is prompt.state
            assert len(journal.history()) == decisions_before
            req.close()

            figures["bad input"] = {
                "requests": total,
                "seconds": round(elapsed, 2),
                "by kind": dict(sorted(kinds.items())),
                "error codes": dict(sorted(codes.items())),
            }
    finally:
        ctx.destroy(linger=0)


_CODES = {
    "BAD_REQUEST", "UNKNOWN_TASK", "UNKNOWN_PROMPT", "UNKNOWN_AGENT", "NOT_PENDING",
    "ALREADY_ANSWERED", "INVALID_STATE", "VERSION_MISMATCH", "UNAUTHORIZED",
}
"""Codes a hostile request may get; INTERNAL would mean a bug was hit."""
