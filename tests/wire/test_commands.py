"""Commands end to end over real ipc sockets: submit, ask, answer, abort, errors, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from core import protocol as p
from core.assembly import Assembly
from core.client import Client
from core.errors import (
    AlreadyAnswered,
    BadRequest,
    InvalidState,
    PromptTimedOut,
    Unavailable,
    UnknownAgent,
    UnknownPrompt,
    UnknownTask,
    VersionMismatch,
)
from core.model import EndReason, PromptState, Question, TaskStatus
from core.registry import Registry
from core.runtime import ConnectionInfo
from core.server import Daemon
from tests.support import until
from tests.wire.conftest import HEARTBEAT, make_registry

Connect = Callable[..., Awaitable[Client]]


async def raw_request(endpoint: str, data: bytes, timeout: float = 2.0) -> p.Reply:
    """Send one encoded request on a fresh REQ socket and decode the reply."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        await sock.send(data)
        assert await sock.poll(int(timeout * 1000), zmq.POLLIN), "no reply"
        return p.REPLY_DECODER.decode(await sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()


async def test_hello_reports_version_epoch_and_agents(client: Client, daemon: Daemon) -> None:
    hello = await client.hello()
    assert hello["version"] == p.PROTOCOL_VERSION
    assert hello["epoch"] == daemon.registry.epoch
    assert hello["agents"] == ["echo", "forever", "tree"]
    assert hello["heartbeat"] == HEARTBEAT


async def test_other_protocol_version_is_refused(daemon: Daemon, connect: Connect) -> None:
    future = await connect(protocol_version=p.PROTOCOL_VERSION + 1)
    with pytest.raises(VersionMismatch, match="protocol 3, the daemon speaks 1 or 2"):
        await future.hello()
    data = p.encode({"id": "x1", "version": 99, "body": {"op": "hello", "new": [1, 2]}})
    reply = await raw_request(daemon.connection.commands, data)
    assert reply.id == "x1" and not reply.ok
    assert reply.error is not None and reply.error.code == "VERSION_MISMATCH"


async def test_submit_answer_and_finish(client: Client, registry: Registry) -> None:
    task = await client.submit("echo", "pytest -q")
    assert task.status is TaskStatus.IN_PROGRESS and task.agent == "echo"
    await until(lambda: registry.get(task.id).status is TaskStatus.BLOCKED)
    prompt = await client.answer_task(task.id, "APPROVE", reason="looks safe")
    assert prompt.answer == "approve" and prompt.reason == "looks safe"
    assert prompt.answered_by == f"test:{client.origin.user}@{client.origin.host}"
    await until(lambda: registry.get(task.id).status is TaskStatus.FINISHED)
    got, prompts = await client.get(task.id)
    assert got.result == "approve"
    assert [(q.question, q.state) for q in prompts] == [("Run `pytest -q`?", PromptState.ANSWERED)]
    with pytest.raises(AlreadyAnswered, match="already answered 'approve'"):
        await client.answer(prompt.id, "deny")


async def test_errors_arrive_as_their_classes(client: Client, registry: Registry) -> None:
    with pytest.raises(UnknownAgent, match="no agent 'nope'"):
        await client.submit("nope", "x")
    with pytest.raises(UnknownTask, match="no task 999"):
        await client.abort(999)
    with pytest.raises(UnknownPrompt):
        await client.answer(999, "approve")
    with pytest.raises(BadRequest, match="length <= 4096"):
        await client.submit("echo", "x" * 5000)
    task = await client.submit("forever", "busy")
    with pytest.raises(InvalidState, match="waits on no question"):
        await client.answer_task(task.id, "approve")
    with pytest.raises(InvalidState, match="in-process"):
        await client.request(p.Ask(task_id=task.id, question="sneaky?"))
    assert registry.get(task.id).status is TaskStatus.IN_PROGRESS


async def test_list_filters_and_window(client: Client) -> None:
    ids = [(await client.submit("forever", f"job {n}")).id for n in range(5)]
    ext = await client.open_task("outside")
    newest = await client.list_tasks(limit=3)
    assert [t.id for t in newest] == [ext.id, ids[4], ids[3]]
    forever = await client.list_tasks(agent="forever", limit=100)
    assert [t.id for t in forever] == ids[::-1]
    assert [t.id for t in await client.list_tasks(agent="forever", before=ids[2])] == ids[:2][::-1]
    with pytest.raises(BadRequest, match="unknown status"):
        await client.list_tasks(status="sleeping")


async def test_ask_from_one_client_answered_from_another(daemon: Daemon, connect: Connect) -> None:
    asker = await connect(client_name="ask")
    answerer = await connect(client_name="tui")
    await answerer.start_mirror()
    await answerer.wait_synced()
    task = await asker.open_task("deploy to prod", lease=5)
    asking = asyncio.ensure_future(task.ask("Deploy?", choices=["yes", "no"]))
    await until(lambda: any(q.task_id == task.id for q in answerer.mirror.prompts.values()))
    pending = next(q for q in answerer.mirror.prompts.values() if q.task_id == task.id)
    assert pending.question == "Deploy?" and pending.choices == ["yes", "no"]
    assert answerer.mirror.tasks[task.id].status is TaskStatus.BLOCKED
    await answerer.answer(pending.id, "no", reason="friday")
    answered = await asyncio.wait_for(asking, 5)
    assert answered.answer == "no" and answered.is_denial and answered.reason == "friday"
    assert answered.answered_by.startswith("tui:")
    await task.finish("skipped")
    await until(lambda: answerer.mirror.tasks[task.id].status is TaskStatus.FINISHED)
    assert answerer.mirror.tasks[task.id].result == "skipped"


async def test_ask_timeout_default_and_abort(client: Client, connect: Connect) -> None:
    task = await client.open_task("careful", lease=5)
    with pytest.raises(PromptTimedOut, match="nobody answered"):
        await task.ask("Proceed?", timeout=0.1)
    picked = await task.ask("Proceed anyway?", timeout=0.1, default="deny")
    assert picked.answer == "deny" and picked.answered_by == "timeout"
    other = await connect()
    asking = asyncio.ensure_future(task.ask("Last chance?"))
    await until(lambda: client.mirror.tasks[task.id].status is TaskStatus.BLOCKED)
    assert await other.abort(task.id) == [task.id]
    with pytest.raises(InvalidState, match="was aborted"):
        await asyncio.wait_for(asking, 5)


async def test_ask_takes_a_question(daemon: Daemon, connect: Connect) -> None:
    asker = await connect(client_name="ask")
    answerer = await connect(client_name="tui")
    task = await asker.open_task("deploy to prod", lease=5)
    asking = asyncio.ensure_future(task.ask(Question(text="Deploy?", choices=["ship", "hold"])))
    await until(lambda: daemon.registry.pending_prompts())
    [pending] = daemon.registry.pending_prompts()
    assert pending.question == "Deploy?" and pending.choices == ["ship", "hold"]
    await answerer.answer(pending.id, "ship")
    assert (await asyncio.wait_for(asking, 5)).answer == "ship"
    again = Question(text="Again?", choices=["ship", "hold"], timeout=0.1, default="hold")
    picked = await task.ask(again)
    assert picked.answer == "hold" and picked.answered_by == "timeout"
    with pytest.raises(TypeError, match="inside the Question"):
        await task.ask(Question(text="Both?"), timeout=1.0)
    assert [q.question for q in (await asker.get(task.id))[1]] == ["Deploy?", "Again?"]


async def test_tokens_progress_and_fail(client: Client, registry: Registry) -> None:
    task = await client.open_task("report", agent="crawler", lease=5)
    await task.add_tokens(100, 20)
    await task.progress("page 3 of 9")
    live = registry.get(task.id)
    assert (live.agent, live.prompt_tokens, live.completion_tokens, live.progress) == (
        "crawler", 100, 20, "page 3 of 9")
    await task.fail("site down")
    ended = registry.get(task.id)
    assert ended.status is TaskStatus.FAILED and ended.error == "site down"
    with pytest.raises(InvalidState):
        await task.add_tokens(1)


async def test_lease_renewed_in_background_and_lost_without_it(
    client: Client, daemon: Daemon, registry: Registry
) -> None:
    task = await client.open_task("long job", lease=0.15)
    start = asyncio.get_running_loop().time()
    seen = daemon.requests
    # Six renewals (every lease/3) span more than two leases: only they keep it alive.
    await until(lambda: daemon.requests >= seen + 6)
    assert asyncio.get_running_loop().time() - start > 0.15
    assert registry.get(task.id).status is TaskStatus.IN_PROGRESS
    await task.close()
    await until(lambda: registry.get(task.id).status is TaskStatus.FAILED)
    assert registry.get(task.id).end_reason is EndReason.LOST


async def test_abort_running_subtree(client: Client, registry: Registry) -> None:
    root = await client.submit("tree", "build")
    await until(lambda: len(registry.subtree(root.id)) == 3
                and all(t.status is not TaskStatus.QUEUED for t in registry.subtree(root.id)))
    kids = [t.id for t in registry.children(root.id)]
    assert await client.abort(kids[0], only=True) == [kids[0]]
    assert registry.get(kids[1]).status is TaskStatus.IN_PROGRESS
    assert await client.abort(root.id) == [root.id, kids[1]]
    assert await client.abort(root.id) == []  # idempotent
    for task in registry.subtree(root.id):
        assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.ABORTED
        assert task.error is not None and task.error.startswith("aborted by test:")
        await asyncio.wait_for(registry.join(task.id), 2)  # the runs were really cancelled
    assert registry.running == 0


async def test_retried_request_id_is_applied_once(client: Client, daemon: Daemon,
                                                  registry: Registry) -> None:
    data = p.encode(p.Request(id="retry-1", version=p.PROTOCOL_VERSION,
                              body=p.Submit(agent="forever", description="once")))
    first = await raw_request(daemon.connection.commands, data)
    second = await raw_request(daemon.connection.commands, data)
    assert first.ok and first == second
    assert [t.description for t in registry.list()] == ["once"]


async def test_lost_reply_is_retried_without_applying_twice(
    runtime_dir: Path, tmp_path: Path, connect: Connect
) -> None:
    deck = Assembly(lambda first_id: make_registry(first_id=first_id), runtime_dir=runtime_dir,
                    journal=tmp_path / "journal.sqlite3", heartbeat=HEARTBEAT)
    async with deck:
        assert deck.daemon is not None and deck.journal is not None
        client = await connect()
        task = await client.open_task("risky", lease=5)
        prompt = await client.request(p.Ask(task_id=task.id, question="Go?"))
        assert isinstance(prompt, p.PromptResult)
        data = p.encode(p.Request(id="answer-1", version=p.PROTOCOL_VERSION, origin=client.origin,
                                  body=p.Answer(prompt_id=prompt.prompt.id, text="approve")))
        # The first sender goes away before its reply; the retry sends the same request again.
        ctx = zmq.asyncio.Context()
        lost = ctx.socket(zmq.REQ)
        lost.connect(deck.daemon.connection.commands)
        await lost.send(data)
        await until(lambda: deck.registry.get_prompt(prompt.prompt.id).answer == "approve",
                    what="the first answer")
        lost.close(linger=0)
        ctx.term()
        retried = await raw_request(deck.daemon.connection.commands, data)
        assert retried.ok and isinstance(retried.result, p.PromptResult)
        assert retried.result.prompt.answer == "approve"  # not ALREADY_ANSWERED
        [decision] = deck.journal.history(task_id=task.id)
        assert (decision.action, decision.prompt_id) == ("answer", prompt.prompt.id)
        assert decision.by == client.origin.by and decision.client == client.origin.client
        assert await client.abort(task.id) == [task.id]
        assert deck.journal.history(task_id=task.id)[-1].detail == f"subtree: ended {task.id}"


async def test_unavailable_when_nobody_answers(runtime_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="no daemon running"):
        async with Client(runtime_dir):
            pass
    dead = ConnectionInfo(events=f"ipc://{tmp_path}/e", commands=f"ipc://{tmp_path}/c")
    async with Client(connection=dead, request_timeout=0.05, retries=2) as client:
        with pytest.raises(Unavailable, match=r"did not answer \(2 tries"):
            await client.hello()
        assert client.retry_count == 1


async def test_ask_after_a_restart_that_reuses_ids_waits_for_its_own_answer(
    runtime_dir: Path, connect: Connect
) -> None:
    first = make_registry()
    async with Daemon(first, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        asker = await connect(request_timeout=0.2, retries=3)
        old = await asker.open_task("before", lease=5)
        asking = asyncio.ensure_future(old.ask("Old question?"))
        await until(lambda: asker.mirror.prompts)
        await asker.answer(next(iter(asker.mirror.prompts)), "deny")
        assert (await asking).answer == "deny"
        await old.close()
    await first.close()
    second = make_registry()  # no journal: task and prompt ids start again at 1
    async with Daemon(second, runtime_dir=runtime_dir, heartbeat=HEARTBEAT):
        await until(lambda: asker.mirror.epoch == second.epoch, timeout=10)
        new = await asker.open_task("after", lease=5)
        assert new.id == old.id
        asking = asyncio.ensure_future(new.ask("New question?"))
        await until(lambda: second.pending_prompts())
        assert not asking.done()  # the old answer to prompt 1 is not taken for this one
        answerer = await connect()
        await answerer.answer(second.pending_prompts()[0].id, "approve")
        answered = await asyncio.wait_for(asking, 5)
        assert (answered.question, answered.answer) == ("New question?", "approve")
        await new.close()
    await second.close()
