"""Every wire message survives a MessagePack round trip; caps and tags are what the docs say."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from core import protocol as p
from core.errors import BadRequest, VersionMismatch
from core.model import Event, Prompt, PromptOpened, Snapshot, Task, TaskStatus

TASK = Task(id=3, agent="demo", description="refactor", status=TaskStatus.BLOCKED, parent_id=1)
PROMPT = Prompt(id=9, task_id=3, question="Run `pytest -q`?", choices=["yes", "no"])

COMMANDS = [
    p.Hello(client_version="0.1.0"),
    p.GetSnapshot(),
    p.ListTasks(agent="demo", status=TaskStatus.QUEUED, parent_id=1, roots_only=True, limit=5,
                before=10),
    p.GetTask(task_id=3),
    p.History(task_id=3, limit=20),
    p.Submit(agent="demo", description="x", parent_id=1, timeout=5.0, created_by="planner"),
    p.Answer(prompt_id=9, text="yes", reason="fine", by="me"),
    p.AnswerTask(task_id=3, text="no", prompt_id=9),
    p.Abort(task_id=3, only=True),
    p.Open(description="deploy", agent="ci", parent_id=None, lease=20.0, timeout=60.0),
    p.Tokens(task_id=3, prompt=10, completion=2),
    p.Progress(task_id=3, text=None),
    p.Ask(task_id=3, question="Go?", choices=["a", "b", "c"], timeout=1.5, default="a"),
    p.Finish(task_id=3, result="done"),
    p.Fail(task_id=3, error="broke"),
    p.LeaseHeartbeat(task_id=3, lease=30.0),
]

RESULTS = [
    p.HelloResult(version=1, epoch=7, seq=8, server="taskdeck", pid=1, agents=["demo"],
                  heartbeat=1.0, max_message=p.MAX_MESSAGE),
    p.SnapshotResult(snapshot=Snapshot(epoch=7, seq=8, tasks=[TASK], prompts=[PROMPT])),
    p.TasksResult(tasks=[TASK]),
    p.TaskDetail(task=TASK, prompts=[PROMPT]),
    p.TaskResult(task=TASK),
    p.PromptResult(prompt=PROMPT),
    p.AbortResult(task_ids=[3, 4]),
    p.HistoryResult(entries=[
        p.Decision(id=1, ts=1.5, action="answer", task_id=3, prompt_id=9, detail="deny: no",
                   by="tui:ann@box", user="ann", host="box", pid=42, client="tui",
                   curve_key="k" * 40, epoch=7),
        p.Decision(id=2, ts=2.5, action="abort", task_id=1, detail="subtree: ended 1, 3"),
    ]),
]


@pytest.mark.parametrize("body", COMMANDS, ids=lambda b: type(b).__name__)
def test_every_command_round_trips(body: p.Command) -> None:
    origin = p.Origin(user="ann", host="box", pid=42, client="cli")
    request = p.Request(id="r-1", version=p.PROTOCOL_VERSION, body=body, origin=origin)
    assert p.decode_request(p.encode(request)) == request
    assert p.COMMANDS[msgspec.msgpack.decode(p.encode(body))["op"]] is type(body)


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_every_reply_round_trips(result: p.Result) -> None:
    reply = p.Reply(id="r-1", ok=True, result=result)
    assert p.REPLY_DECODER.decode(p.encode(reply)) == reply
    error = p.Reply(id="r-2", ok=False, error=p.Error(code="UNKNOWN_TASK", message="no task 3"))
    assert p.REPLY_DECODER.decode(p.encode(error)) == error


def test_events_and_heartbeats_round_trip() -> None:
    event = Event(epoch=7, seq=9, ts=1.5, body=PromptOpened(task=TASK, prompt=PROMPT))
    assert p.EVENT_DECODER.decode(p.encode(event)) == event
    assert msgspec.msgpack.decode(p.encode(event))["body"]["kind"] == "promptopened"
    beat = p.Heartbeat(epoch=7, seq=9, ts=2.0)
    assert p.HEARTBEAT_DECODER.decode(p.encode(beat)) == beat


def test_origin_names_who_answered() -> None:
    assert p.Origin(user="ann", host="box", client="tui").by == "tui:ann@box"
    assert p.Origin().by == "unknown:?@?"


def test_curve_key_is_the_last_origin_field_and_optional() -> None:
    """Clients written before `curve_key` existed still decode; the field comes last."""
    assert p.Origin.__struct_fields__[-1] == "curve_key"
    old = msgspec.msgpack.encode({"id": "1", "version": 1, "body": {"op": "history"},
                                  "origin": {"user": "ann", "host": "box", "pid": 1,
                                             "client": "cli"}})
    request = p.decode_request(old)
    assert request.origin.curve_key is None
    assert request.body == p.History(task_id=None, limit=200)


def test_minimal_request_from_another_language() -> None:
    """Only id, version and op are required; origin and defaults may be left out."""
    request = p.decode_request(msgspec.msgpack.encode(
        {"id": "1", "version": 1, "body": {"op": "open", "description": "d"}}))
    assert request.body == p.Open(description="d") and request.origin == p.Origin()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"op": "ask", "task_id": 1, "question": "q", "choices": []}, "length >= 1"),
        ({"op": "ask", "task_id": 1, "question": "q", "choices": [""]}, "length >= 1"),
        ({"op": "open", "description": "d", "lease": 0}, "Expected `float` > 0.0"),
        ({"op": "tokens", "task_id": 1, "prompt": -1}, "Expected `int` >= 0"),
        ({"op": "list", "limit": 10001}, "Expected `int` <= 10000"),
        ({"op": "history", "limit": -1}, "Expected `int` >= 0"),
        ({"op": "history", "task_id": "3"}, "Expected `int | null`, got `str`"),
        ({"op": "list", "status": "sleeping"}, "Invalid enum value 'sleeping'"),
        ({"op": "finish", "task_id": 1, "result": "r" * (p.MAX_RESULT + 1)}, "length <= 65536"),
        ({"op": "abort"}, "missing required field `task_id`"),
    ],
)
def test_caps_and_ranges_are_enforced(body: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        p.decode_request(msgspec.msgpack.encode({"id": "1", "version": 1, "body": body}))


def test_version_checked_even_when_the_body_is_unreadable() -> None:
    with pytest.raises(VersionMismatch, match="client speaks protocol 7"):
        p.decode_request(msgspec.msgpack.encode({"id": "1", "version": 7, "body": {"op": "zap"}}))


def test_docs_list_every_command_and_result() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for op in p.COMMANDS:
        assert f"| `{op}` |" in doc, op
    for result in RESULTS:
        tag = msgspec.inspect.type_info(type(result)).tag  # type: ignore[attr-defined]
        assert f"| `{tag}` |" in doc, tag
