"""The command path: the blocking SyncClient's Lazy Pirate exchange against a real daemon."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core import protocol as p
from core.client import Client, ClientOptions, SyncClient
from core.errors import Unavailable, UnknownTask
from core.model import PromptClosed, Question
from core.runtime import ConnectionInfo
from tests.support import until_sync
from tests.wire.conftest import HEARTBEAT, ThreadedDaemon

Connect = Callable[..., Awaitable[Client]]


def _client_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "taskdeck-client"]


def test_sync_commands_run_without_an_event_loop(threaded_daemon: ThreadedDaemon) -> None:
    with SyncClient(threaded_daemon.runtime_dir, client_name="script") as client:
        assert client.hello()["version"] == p.PROTOCOL_VERSION
        task = client.submit("forever", "keep going")
        assert [t.id for t in client.list_tasks(agent="forever")] == [task.id]
        got, prompts = client.get(task.id)
        assert got.description == "keep going" and prompts == []
        with pytest.raises(UnknownTask, match="no task 999"):
            client.get(999)
        assert client.abort(task.id) == [task.id]
        assert client.get(task.id)[0].status.is_ended
        assert _client_threads() == []  # no background loop for plain commands
        assert client.retry_count == 0


def test_sync_answer_lost_reply_is_retried_and_applied_once(runtime_dir: Path) -> None:
    with ThreadedDaemon(runtime_dir, heartbeat=HEARTBEAT) as served:
        registry = served.registry
        assert registry is not None
        closed: list[int] = []

        def open_prompt() -> int:
            registry.listen(lambda e: closed.append(e.seq) if isinstance(e.body, PromptClosed)
                            else None)
            task = registry.open_external("risky", lease=30.0)
            return registry.open_prompt(task.id, "Go?").id

        prompt_id = served.call(open_prompt)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:  # the daemon's loop is busy: no request is answered meanwhile
            held.set()
            release.wait(10)

        served.loop.call_soon_threadsafe(hold)
        assert held.wait(5)
        with SyncClient(runtime_dir, request_timeout=0.2, retries=10) as client, \
                concurrent.futures.ThreadPoolExecutor(1) as pool:
            answering = pool.submit(client.answer, prompt_id, "approve")
            # No reply within the timeout: the client closes, reopens, resends the same id.
            until_sync(lambda: client.retry_count >= 1, what="a retry")
            release.set()
            answered = answering.result(timeout=5)
        assert answered.answer == "approve"  # not ALREADY_ANSWERED: the retry got the first reply
        assert served.call(lambda: len(closed)) == 1


def test_sync_client_reaches_a_restarted_daemon(runtime_dir: Path) -> None:
    with ThreadedDaemon(runtime_dir, heartbeat=HEARTBEAT) as first:
        client = SyncClient(runtime_dir, request_timeout=0.2, retries=50)
        assert first.registry is not None
        assert client.hello()["epoch"] == first.registry.epoch
    # The daemon is gone: the request times out, and each retry looks for it again.
    with client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        submitting = pool.submit(client.submit, "forever", "after the restart")
        until_sync(lambda: client.retry_count >= 1, what="a retry against no daemon")
        with ThreadedDaemon(runtime_dir, heartbeat=HEARTBEAT) as second:
            task = submitting.result(timeout=10)
            assert second.registry is not None
            assert second.call(lambda: second.registry.get(task.id).description) == (  # type: ignore[union-attr]
                "after the restart"
            )
            assert client.hello()["epoch"] == second.registry.epoch


def test_sync_client_gives_up_after_bounded_retries(tmp_path: Path) -> None:
    dead = ConnectionInfo(events=f"ipc://{tmp_path}/e", commands=f"ipc://{tmp_path}/c")
    with SyncClient(connection=dead, request_timeout=0.05, retries=3) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"did not answer \(3 tries, 0.05s each\)"):
            client.hello()
        assert time.monotonic() - started < 2.0
        assert client.retry_count == 2


def test_sync_client_needs_a_daemon(runtime_dir: Path) -> None:
    with pytest.raises(Unavailable, match="no daemon running"):
        SyncClient(runtime_dir)


def test_sync_and_async_clients_decode_the_same_errors(threaded_daemon: ThreadedDaemon) -> None:
    async def via_async() -> str:
        async with Client(threaded_daemon.runtime_dir, request_timeout=1.0) as client:
            with pytest.raises(UnknownTask) as caught:
                await client.answer_task(424242, "approve")
            return str(caught.value)

    with SyncClient(threaded_daemon.runtime_dir, request_timeout=1.0) as client, \
            pytest.raises(UnknownTask) as caught:
        client.answer_task(424242, "approve")
    assert str(caught.value) == asyncio.run(via_async()) == "no task 424242"


def test_sync_external_task_starts_its_background_loop_on_demand(
    threaded_daemon: ThreadedDaemon,
) -> None:
    with SyncClient(threaded_daemon.runtime_dir, request_timeout=1.0) as client:
        assert _client_threads() == []
        with client.open_task("report", lease=5.0) as task:
            assert _client_threads() == ["taskdeck-client"]  # renews the lease between calls
            task.progress("half way")
            assert client.get(task.id)[0].progress == "half way"
        assert client.get(task.id)[0].status.value == "finished"
    assert _client_threads() == []



def test_options_are_given_once_and_reach_the_background_client(
    threaded_daemon: ThreadedDaemon,
) -> None:
    given = ClientOptions(client_name="script", request_timeout=1.0, retries=5)
    with SyncClient(threaded_daemon.runtime_dir, options=given, retries=2) as client:
        assert (client.options.client_name, client.retries) == ("script", 2)  # keyword wins
        with client.open_task("report", lease=5.0) as task:
            assert client.client.options == client.options
            assert client.client.origin == client.origin
            picked = task.ask(Question(text="Go on?", timeout=0.1, default="deny"))
            assert picked.answer == "deny" and picked.answered_by == "timeout"
    with pytest.raises(TypeError, match="request_timout"):
        Client(threaded_daemon.runtime_dir, request_timout=1.0)


def test_async_client_can_be_reused_across_event_loops(threaded_daemon: ThreadedDaemon) -> None:
    client = Client(threaded_daemon.runtime_dir, request_timeout=10.0)

    async def ask_hello() -> int:
        return (await client.hello())["version"]

    assert asyncio.run(ask_hello()) == p.PROTOCOL_VERSION
    started = time.monotonic()
    assert asyncio.run(ask_hello()) == p.PROTOCOL_VERSION  # a new loop, the same client
    assert time.monotonic() - started < 5.0  # woken by the reply, not by the 10 s timeout
    asyncio.run(client.close())
