"""Generated malformed and hostile requests for the command socket, by kind, from a seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from core.protocol import MAX_MESSAGE, MAX_RESULT, PROTOCOL_VERSION

pack = msgspec.msgpack.encode


@dataclass(frozen=True)
class Target:
    """Ids of the live state the hostile requests aim at (none of them may change it)."""

    external: int
    """An external task blocked on `prompt`."""
    prompt: int
    finished: int
    """An ended external task."""
    in_process: int
    """A live in-process task."""
    replay_id: str
    """The request id of a mutating request already applied."""


@dataclass(frozen=True)
class Hostile:
    kind: str
    frames: list[bytes]
    replay: bool = False
    """True when the reply must be the cached reply of the original request."""


def _wrong(rng: random.Random, *, not_: type | tuple[type, ...]) -> object:
    """A value of some msgpack type other than `not_`."""
    while True:
        value = rng.choice([
            rng.randint(-(2**63), 2**64 - 1),
            rng.random() * 10**rng.randint(0, 30),
            None,
            rng.random() < 0.5,
            "".join(rng.choice("abc\x00\u2603\U0001f600") for _ in range(rng.randint(0, 8))),
            rng.randbytes(rng.randint(0, 8)),
            [rng.randint(0, 9) for _ in range(rng.randint(0, 3))],
            {"k": rng.randint(0, 9)},
        ])
        if isinstance(value, bool) and not_ in (int, (int,)):
            return value  # msgspec never takes a bool for an int
        if not isinstance(value, not_):
            return value


def _request(
    rid: str, body: object, *, version: object = PROTOCOL_VERSION, **extra: object
) -> bytes:
    return pack({"id": rid, "version": version, "body": body, **extra})


def random_bytes(rng: random.Random, n: int) -> Iterator[Hostile]:
    for _ in range(n):
        yield Hostile("random bytes", [rng.randbytes(rng.randint(0, 300))])


def wrong_types(rng: random.Random, n: int, t: Target) -> Iterator[Hostile]:
    """Valid MessagePack in the wrong shape: envelope or field types wrong, values out of range."""
    ops: list[tuple[str, dict[str, object], str, type | tuple[type, ...]]] = [
        ("answer", {"text": "approve"}, "prompt_id", int),
        ("answer", {"prompt_id": t.prompt}, "text", str),
        ("answer_task", {"text": "approve"}, "task_id", int),
        ("abort", {}, "task_id", int),
        ("submit", {"description": "x"}, "agent", str),
        ("submit", {"agent": "quick"}, "description", str),
        ("open", {}, "description", str),
        ("tokens", {}, "task_id", int),
        ("ask", {"task_id": t.external}, "question", str),
        ("finish", {}, "task_id", int),
        ("fail", {"task_id": t.external}, "error", str),
        ("get", {}, "task_id", int),
        ("heartbeat", {}, "task_id", int),
        ("progress", {"text": "x"}, "task_id", int),
    ]
    out_of_range: list[dict[str, object]] = [
        {"op": "get", "task_id": -1},
        {"op": "get", "task_id": 2**64 - 1},
        {"op": "open", "description": "x", "lease": 0},
        {"op": "open", "description": "x", "lease": -3.5},
        {"op": "open", "description": "x", "lease": 10**9},
        {"op": "open", "description": "x", "agent": ""},
        {"op": "tokens", "task_id": t.external, "prompt": -5},
        {"op": "tokens", "task_id": t.external, "completion": 2**60},
        {"op": "ask", "task_id": t.external, "question": "q", "choices": []},
        {"op": "ask", "task_id": t.external, "question": "q", "choices": ["a"] * 10},
        {"op": "ask", "task_id": t.external, "question": "q", "choices": [""]},
        {"op": "ask", "task_id": t.external, "question": "q", "timeout": -1},
        {"op": "list", "limit": 10**6},
        {"op": "list", "status": "exploded"},
        {"op": "submit", "agent": "quick", "description": "x", "timeout": 0},
        {"op": "answer", "prompt_id": -2, "text": "approve", "extra": [1]},
    ]
    envelopes: list[dict[str, object]] = [
        {"id": 5, "version": PROTOCOL_VERSION, "body": {"op": "hello"}},
        {"id": "", "version": PROTOCOL_VERSION, "body": {"op": "hello"}},
        {"id": "x" * 200, "version": PROTOCOL_VERSION, "body": {"op": "hello"}},
        {"id": "a", "version": "1", "body": {"op": "hello"}},
        {"id": "a", "version": None, "body": {"op": "hello"}},
        {"id": "a", "body": {"op": "hello"}},
        {"id": "a", "version": PROTOCOL_VERSION},
        {"id": "a", "version": PROTOCOL_VERSION, "body": "hello"},
        {"id": "a", "version": PROTOCOL_VERSION, "body": []},
        {"id": "a", "version": PROTOCOL_VERSION, "body": {}},
        {"id": "a", "version": PROTOCOL_VERSION, "body": {"op": "hello"}, "origin": "bob"},
        {"id": "a", "version": PROTOCOL_VERSION, "body": {"op": "hello"}, "origin": {"pid": -1}},
        {"id": "a", "version": PROTOCOL_VERSION, "body": {"op": "hello"},
         "origin": {"user": "u" * 500}},
    ]
    for i in range(n):
        roll = rng.random()
        rid = f"wrong-{i}"
        if roll < 0.6:
            op, fields, name, kind = rng.choice(ops)
            body = {"op": op, **fields, name: _wrong(rng, not_=kind)}
            yield Hostile("wrong types", [_request(rid, body)])
        elif roll < 0.8:
            yield Hostile("out of range", [_request(rid, dict(rng.choice(out_of_range)))])
        elif roll < 0.95:
            yield Hostile("bad envelope", [pack(rng.choice(envelopes))])
        else:
            yield Hostile("not a map", [pack(_wrong(rng, not_=dict))])


def huge_strings(rng: random.Random, n: int, t: Target) -> Iterator[Hostile]:
    """Text fields far over their caps, but under the transport's message cap."""
    for i in range(n):
        char = rng.choice("xyz\u2603")
        size = rng.randint(MAX_RESULT + 1, (MAX_MESSAGE - 1024) // len(char.encode()))
        text = char * size
        body = rng.choice([
            {"op": "open", "description": text},
            {"op": "answer", "prompt_id": t.prompt, "text": text},
            {"op": "submit", "agent": text[:129] + "q", "description": "x"},
            {"op": "ask", "task_id": t.external, "question": text},
            {"op": "fail", "task_id": t.external, "error": text},
        ])
        yield Hostile("huge strings", [_request(f"huge-{i}", body)])


def deep_nesting(rng: random.Random, n: int) -> Iterator[Hostile]:
    """Arrays and maps nested hundreds to hundreds of thousands deep, alone or inside a request."""
    for i in range(n):
        depth = rng.choice([200, 1_000, 10_000, 100_000])
        opener = rng.choice([b"\x91", b"\x81\xa1k"])  # [x] or {"k": x}
        nested = opener * depth + b"\xc0"
        if rng.random() < 0.5:
            data = nested
        else:  # {"id": .., "version": 1, "body": <nested>}
            rid = f"deep-{i}".encode()
            data = (
                b"\x83\xa2id" + bytes([0xA0 | len(rid)]) + rid
                + b"\xa7version" + pack(PROTOCOL_VERSION) + b"\xa4body" + nested
            )
        yield Hostile("deep nesting", [data])


def unknown_tags(rng: random.Random, n: int) -> Iterator[Hostile]:
    names = ["drop_tables", "shutdown", "eval", "HELLO", "Answer", "", "op", "__class__",
             "answer\x00", "snapshot ", "\u2603"]
    for i in range(n):
        op = rng.choice([*names, rng.randint(-5, 5), None, ["answer"]])
        yield Hostile("unknown tags", [_request(f"tag-{i}", {"op": op, "task_id": 1})])


def wrong_versions(rng: random.Random, n: int) -> Iterator[Hostile]:
    for i in range(n):
        version = rng.choice([0, PROTOCOL_VERSION + 1, -1, 2**32, 2**64 - 1, 99])
        body = rng.choice([{"op": "hello"}, {"op": "abort", "task_id": 1}, {"op": "snapshot"}])
        yield Hostile("wrong protocol version", [_request(f"ver-{i}", body, version=version)])


def refused_commands(rng: random.Random, n: int, t: Target) -> Iterator[Hostile]:
    """Well-formed commands the registry must refuse: unknown ids, wrong states, bad values."""
    unknown = lambda: rng.randint(10_000, 2**62)  # noqa: E731
    bodies = [
        lambda: {"op": "answer", "prompt_id": unknown(), "text": "approve"},
        lambda: {"op": "answer", "prompt_id": t.prompt, "text": "   "},
        lambda: {"op": "answer_task", "task_id": t.finished, "text": "approve"},
        lambda: {"op": "answer_task", "task_id": t.in_process, "text": "approve"},
        lambda: {"op": "answer_task", "task_id": t.finished, "text": "x", "prompt_id": t.prompt},
        lambda: {"op": "abort", "task_id": unknown()},
        lambda: {"op": "get", "task_id": unknown()},
        lambda: {"op": "list", "agent": "nobody-" + str(rng.random())},
        lambda: {"op": "list", "parent_id": unknown()},
        lambda: {"op": "submit", "agent": "nobody", "description": "x"},
        lambda: {"op": "submit", "agent": "quick", "description": "x", "parent_id": unknown()},
        lambda: {"op": "submit", "agent": "quick", "description": "x", "parent_id": t.finished},
        lambda: {"op": "open", "description": "x", "parent_id": t.finished},
        lambda: {"op": "tokens", "task_id": t.finished, "prompt": 5},
        lambda: {"op": "tokens", "task_id": t.in_process, "prompt": 5},
        lambda: {"op": "progress", "task_id": t.in_process, "text": "hijack"},
        lambda: {"op": "finish", "task_id": t.finished},
        lambda: {"op": "finish", "task_id": t.in_process},
        lambda: {"op": "fail", "task_id": unknown(), "error": "x"},
        lambda: {"op": "ask", "task_id": t.finished, "question": "q"},
        lambda: {"op": "ask", "task_id": t.external, "question": "q"},  # already blocked
        lambda: {"op": "ask", "task_id": t.in_process, "question": "q"},
        lambda: {"op": "heartbeat", "task_id": t.finished},
        lambda: {"op": "heartbeat", "task_id": t.in_process},
    ]
    for i in range(n):
        yield Hostile("refused commands", [_request(f"refused-{i}", rng.choice(bodies)())])


def replays(rng: random.Random, n: int, t: Target, original: bytes) -> Iterator[Hostile]:
    """The id of an applied request again: the same body, or a different, harmful one."""
    bodies = [
        None,
        {"op": "abort", "task_id": t.external},
        {"op": "answer", "prompt_id": t.prompt, "text": "approve"},
        {"op": "open", "description": "again"},
        {"op": "finish", "task_id": t.external, "result": "forged"},
    ]
    for _ in range(n):
        body = rng.choice(bodies)
        data = original if body is None else _request(t.replay_id, body)
        yield Hostile("replayed request ids", [data], replay=True)


def generate(seed: int, t: Target, original: bytes, *, scale: int = 1) -> list[Hostile]:
    """At least 10,000 hostile requests (x `scale`), shuffled."""
    rng = random.Random(seed)
    out = [
        *random_bytes(rng, 2500 * scale),
        *wrong_types(rng, 2500 * scale, t),
        *huge_strings(rng, 60 * scale, t),
        *deep_nesting(rng, 400 * scale),
        *unknown_tags(rng, 1200 * scale),
        *wrong_versions(rng, 1200 * scale),
        *refused_commands(rng, 1700 * scale, t),
        *replays(rng, 500 * scale, t, original),
    ]
    rng.shuffle(out)
    return out
