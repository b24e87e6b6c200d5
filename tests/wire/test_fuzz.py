"""Whatever bytes reach the command socket, each request gets a reply and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import protocol as p
from tests.wire.conftest import ThreadedDaemon

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values of every msgpack type except str and int: no command field that must be a
# str or an int can be satisfied by them, so no fuzzed command can change the registry.
not_str_or_int = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.binary(max_size=32),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
any_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["task_id", "prompt_id", "text", "agent", "description", "question", "choices", "lease",
     "result", "error", "only", "limit", "status", "timeout", "by", "reason", "x"]
)
ops = st.sampled_from([*p.COMMANDS, "", "nope", "HELLO"]) | st.text(max_size=12)


@st.composite
def near_requests(draw: st.DrawFn) -> bytes:
    """Well-formed envelopes with bodies whose fields have the wrong types."""
    body: dict[str, object] = {"op": draw(ops)}
    body.update(draw(st.dictionaries(field_names, not_str_or_int, max_size=4)))
    envelope: dict[str, object] = {
        "id": draw(st.text(min_size=1, max_size=8) | st.integers(-(2**63), 2**63) | st.none()),
        "version": draw(st.sampled_from([p.PROTOCOL_VERSION, 0, 2, "1"])),
        "body": body,
    }
    if draw(st.booleans()):
        envelope["origin"] = draw(any_value)
    return p.encode(envelope)


@st.composite
def oversized(draw: st.DrawFn) -> bytes:
    """Valid-looking commands with a text field over its cap."""
    size = draw(st.integers(min_value=p.MAX_TEXT + 1, max_value=3 * p.MAX_TEXT))
    body = draw(st.sampled_from([
        {"op": "open", "description": "d" * size},
        {"op": "submit", "agent": "echo", "description": "d" * size},
        {"op": "answer", "prompt_id": 1, "text": "t" * size},
        {"op": "ask", "task_id": 1, "question": "q" * size},
        {"op": "ask", "task_id": 1, "question": "q", "choices": ["c"] * 10},
        {"op": "ask", "task_id": 1, "question": "q", "choices": ["c" * 65]},
        {"op": "open", "description": "d", "agent": "a" * 129},
    ]))
    return p.encode({"id": "big", "version": p.PROTOCOL_VERSION, "body": body})


payloads = (
    st.binary(max_size=256)
    | any_value.map(p.encode)
    | near_requests()
    | oversized()
)


@pytest.fixture
def sockets(threaded_daemon: ThreadedDaemon) -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    """A raw REQ and a raw DEALER socket on the daemon's command endpoint."""
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    dealer = ctx.socket(zmq.DEALER)
    for sock in (req, dealer):
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(threaded_daemon.connection.commands)
    yield req, dealer
    ctx.destroy(linger=0)


def reply_of(frames: list[bytes]) -> p.Reply:
    return p.REPLY_DECODER.decode(frames[-1])


READ_ONLY = {"hello", "snapshot", "list", "get", "rules", "rule_test"}


def assert_answered(payload: bytes, reply: p.Reply) -> None:
    """Only a read-only command may succeed; anything else is refused with a reason."""
    if reply.ok:
        body = p.peek(payload).get("body")
        assert isinstance(body, dict) and body.get("op") in READ_ONLY, payload
        return
    assert reply.error is not None and reply.error.message
    assert reply.error.code in {"BAD_REQUEST", "VERSION_MISMATCH", "UNKNOWN_TASK",
                                "UNKNOWN_PROMPT", "UNKNOWN_AGENT", "UNKNOWN_RULE",
                                "INVALID_STATE"}


def test_garbage_on_req_socket_always_answered(
    threaded_daemon: ThreadedDaemon, sockets: tuple[zmq.Socket, zmq.Socket]
) -> None:
    req, _ = sockets
    registry = threaded_daemon.registry
    assert registry is not None
    before = threaded_daemon.call(registry.snapshot)

    @FUZZ
    @given(payload=payloads)
    def check(payload: bytes) -> None:
        req.send(payload)
        assert req.poll(2000), f"no reply to {payload[:60]!r}"
        assert_answered(payload, reply_of(req.recv_multipart()))

    check()
    assert threaded_daemon.call(registry.snapshot) == before
    req.send(p.encode(p.Request(id="alive", version=p.PROTOCOL_VERSION, body=p.Hello())))
    assert req.poll(2000)
    assert reply_of(req.recv_multipart()).ok


def test_multi_frame_garbage_on_dealer_always_answered(
    threaded_daemon: ThreadedDaemon, sockets: tuple[zmq.Socket, zmq.Socket]
) -> None:
    _, dealer = sockets
    registry = threaded_daemon.registry
    assert registry is not None
    before = threaded_daemon.call(registry.snapshot)

    @FUZZ
    @given(frames=st.lists(st.binary(max_size=64) | payloads, min_size=1, max_size=5))
    def check(frames: list[bytes]) -> None:
        dealer.send_multipart(frames)
        assert dealer.poll(2000), f"no reply to {frames!r:.80}"
        answer = dealer.recv_multipart()
        if b"" in frames:  # the envelope runs to the first empty frame, and comes back
            assert answer[:-1] == frames[: frames.index(b"") + 1]
        else:
            assert len(answer) == 1
        reply = reply_of(answer)
        if len(frames) == 1 or (b"" in frames and len(frames) - frames.index(b"") == 2):
            assert_answered(frames[-1], reply)
        else:
            assert not reply.ok and reply.error is not None
            assert "expected 1 request frame" in reply.error.message

    check()
    assert threaded_daemon.call(registry.snapshot) == before


def test_bad_request_says_what_is_wrong(sockets: tuple[zmq.Socket, zmq.Socket]) -> None:
    req, _ = sockets
    cases = {
        b"\xc1": "not valid MessagePack",
        p.encode([1, 2, 3]): "Expected `object`, got `array`",
        p.encode({"id": "a", "version": 1, "body": {"op": "fly"}}): "unknown command 'fly'",
        p.encode({"id": "a", "version": 1, "body": {"op": "abort", "task_id": "7"}}):
            "Expected `int`, got `str` - at `$.body.task_id`",
        p.encode({"id": "a", "version": 1,
                  "body": {"op": "answer", "prompt_id": 1, "text": "x" * 5000}}):
            "length <= 4096 - at `$.body.text`",
        b"\x81\xa1a" * 50000 + b"\xc0": "nested too deeply",
        p.encode({"id": "a", "version": 1, "body": {"op": "hello"}})[:-3]: "truncated",
    }
    for data, message in cases.items():
        req.send(data)
        assert req.poll(2000)
        reply = reply_of(req.recv_multipart())
        assert reply.error is not None and reply.error.code == "BAD_REQUEST"
        assert message in reply.error.message


def test_oversized_message_is_dropped_by_the_transport(
    threaded_daemon: ThreadedDaemon, sockets: tuple[zmq.Socket, zmq.Socket]
) -> None:
    req, dealer = sockets
    dealer.send(b"x" * (p.MAX_MESSAGE + 1))
    assert not dealer.poll(300)  # the daemon cut that peer off instead of buffering it
    req.send(msgspec.msgpack.encode(p.Request(id="ok", version=1, body=p.Hello())))
    assert req.poll(2000) and reply_of(req.recv_multipart()).ok
