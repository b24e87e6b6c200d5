"""The command service on its own: encoded requests in, encoded replies out, no sockets.

The registry and the journal are real (a SQLite file in the test's tmp dir); only the
transport is left out, so each rule is checked where it is made: decoding, dedupe by
request id, what a failed journal write does to a batch's replies, and the rules the
registry keeps for answers and reporters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from core import protocol as p
from core.journal import Journal
from core.model import Question, TaskStatus
from core.registry import Registry
from core.service import CommandService, Handled
from tests.wire.conftest import make_registry


def request(body: p.Command, request_id: str = "r1", **origin: object) -> list[bytes]:
    """One request's frames, as a client sends them."""
    return [p.encode(p.Request(id=request_id, version=p.PROTOCOL_VERSION, body=body,
                               origin=p.Origin(**origin)))]  # type: ignore[arg-type]


def reply_of(handled: Handled) -> p.Reply:
    return p.REPLY_DECODER.decode(handled.reply)


def error_of(handled: Handled) -> tuple[str, str, str]:
    reply = reply_of(handled)
    assert not reply.ok and reply.error is not None, reply
    return reply.id, reply.error.code, reply.error.message


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    reg = make_registry()
    yield reg
    await reg.close()


@pytest.fixture
def service(registry: Registry) -> CommandService:
    return CommandService(registry, heartbeat=0.5)


@pytest.fixture
async def journaled(tmp_path: Path) -> AsyncIterator[tuple[CommandService, Journal, Path]]:
    """A service over a registry recorded by a real journal, started as a daemon starts it."""
    path = tmp_path / "state" / "journal.sqlite3"
    journal = Journal.open(path)
    registry = make_registry(first_id=journal.next_id())
    journal.attach(registry)
    service = CommandService(registry, journal=journal)
    service.start()
    try:
        yield service, journal, path
    finally:
        service.stop()
        await registry.close()
        journal.close()


async def test_hello_says_what_the_server_was_given(service: CommandService) -> None:
    handled = service.handle(request(p.Hello()))
    assert handled.recorded is None
    result = reply_of(handled).result
    assert isinstance(result, p.HelloResult)
    assert (result.heartbeat, result.max_message) == (0.5, p.MAX_MESSAGE)
    assert result.agents == ["echo", "forever", "tree"] and result.journal_error is None


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([b"\xc1\x00garbage"], "request is not valid messagepack"),
        ([b"a", b"b"], "expected 1 request frame, got 2"),
        ([], "expected 1 request frame, got 0"),
        ([b"x" * (p.MAX_MESSAGE + 1)], f"request of {p.MAX_MESSAGE + 1} bytes exceeds"),
    ],
)
async def test_bad_bytes_get_one_readable_error(
    service: CommandService, registry: Registry, frames: list[bytes], message: str
) -> None:
    handled = service.handle(frames)
    request_id, code, text = error_of(handled)
    assert (request_id, code) == ("", "BAD_REQUEST") and message in text.lower()
    assert handled.recorded is None and len(registry) == 0


async def test_a_bad_body_is_refused_under_its_request_id(service: CommandService) -> None:
    data = msgspec.msgpack.encode({"id": "mine", "version": p.PROTOCOL_VERSION,
                                   "body": {"op": "submit", "agent": "echo"}})
    request_id, code, text = error_of(service.handle([data]))
    assert (request_id, code) == ("mine", "BAD_REQUEST") and "description" in text


async def test_a_retried_request_id_gets_the_first_reply_and_is_applied_once(
    service: CommandService, registry: Registry
) -> None:
    frames = request(p.Submit(agent="forever", description="once"), "retry-1")
    first = service.handle(frames)
    assert first.recorded == "retry-1"  # its reply waits on the batch's journal write
    again = service.handle(frames)
    assert again == Handled(first.reply, None)
    assert [t.description for t in registry.list()] == ["once"]
    # Reads are not remembered: the same id asks again.
    task_id = registry.list()[0].id
    seen = service.handle(request(p.GetTask(task_id=task_id), "read"))
    registry.set_progress(task_id, "later")
    assert service.handle(request(p.GetTask(task_id=task_id), "read")) != seen


async def test_the_transport_key_replaces_the_one_a_client_claims(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, _ = journaled
    task = reply_of(service.handle(request(p.Open(description="risky"), "o"))).result
    assert isinstance(task, p.TaskResult)
    service.handle(request(p.Abort(task_id=task.task.id), "a", curve_key="k" * 40), "real-key")
    [decision] = journal.history(task_id=task.task.id)
    assert (decision.action, decision.curve_key) == ("abort", "real-key")


async def test_an_ask_opens_the_question_it_carries(service: CommandService) -> None:
    task = reply_of(service.handle(request(p.Open(description="deploy"), "o"))).result
    assert isinstance(task, p.TaskResult)
    question = Question(text="Deploy?", choices=["yes", "no", "later"], timeout=30.0,
                        default="later")
    opened = reply_of(service.handle(request(p.Ask.of(task.task.id, question), "q"))).result
    assert isinstance(opened, p.PromptResult)
    prompt = opened.prompt
    assert Question(text=prompt.question, choices=prompt.choices, timeout=prompt.timeout,
                    default=prompt.default) == question


async def test_reporters_may_not_report_on_an_in_process_task(
    service: CommandService, registry: Registry
) -> None:
    task = registry.submit("forever", "mine")
    for body in (p.Tokens(task_id=task.id, prompt=5), p.Progress(task_id=task.id, text="x"),
                 p.Ask(task_id=task.id, question="Go?")):
        _, code, text = error_of(service.handle(request(body, f"r-{body.__class__.__name__}")))
        assert (code, text) == ("INVALID_STATE",
                                f"task {task.id} runs in-process; only its agent reports on it")
    assert registry.get(task.id).tokens == 0 and registry.pending_prompts() == []


async def test_answer_task_finds_the_question_or_says_why_not(
    service: CommandService, registry: Registry
) -> None:
    one, other = registry.open_external("one"), registry.open_external("other")
    asked = registry.open_prompt(one.id, "Go?")
    _, code, text = error_of(service.handle(
        request(p.AnswerTask(task_id=other.id, text="approve", prompt_id=asked.id), "wrong")))
    assert (code, text) == ("BAD_REQUEST",
                            f"prompt {asked.id} belongs to task {one.id}, not {other.id}")
    _, code, text = error_of(service.handle(
        request(p.AnswerTask(task_id=other.id, text="approve"), "idle")))
    assert (code, text) == ("INVALID_STATE", f"task {other.id} is in progress and waits on "
                                             "no question")
    answered = reply_of(service.handle(
        request(p.AnswerTask(task_id=one.id, text="APPROVE"), "ok"))).result
    assert isinstance(answered, p.PromptResult) and answered.prompt.answer == "approve"
    _, code, text = error_of(service.handle(
        request(p.AnswerTask(task_id=one.id, text="deny"), "again")))
    assert code == "ALREADY_ANSWERED" and "'Go?'" in text and "waits on no other question" in text
    registry.finish(one.id)
    _, code, text = error_of(service.handle(
        request(p.AnswerTask(task_id=one.id, text="deny"), "late")))
    assert (code, text) == ("INVALID_STATE", f"task {one.id} has ended (finished); there is no "
                                             "question to answer")


async def test_history_needs_a_journal(service: CommandService) -> None:
    _, code, text = error_of(service.handle(request(p.History(), "h")))
    assert code == "INVALID_STATE" and "keeps no journal" in text


async def test_a_failed_journal_write_turns_a_batch_ok_into_journal_failed(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, path = journaled
    listed = service.handle(request(p.ListTasks(), "list"))
    opened = service.handle(request(p.Open(description="deploy"), "open-1"))
    assert (listed.recorded, opened.recorded) == (None, "open-1")
    path.unlink()  # the journal is deleted under the daemon: the batch's write fails
    error = service.write()
    assert error is not None and "deleted or replaced" in error
    replaced = service.unrecorded("open-1", error)
    request_id, code, text = error_of(Handled(replaced, None))
    assert (request_id, code) == ("open-1", "JOURNAL_FAILED")
    assert text.startswith("applied in memory only, not recorded:")
    # A retry hears the same, and nothing that creates, ends or decides is taken any more.
    assert service.handle(request(p.Open(description="deploy"), "open-1")).reply == replaced
    _, code, text = error_of(service.handle(request(p.Open(description="more"), "open-2")))
    assert code == "JOURNAL_FAILED" and text.startswith("refused: the daemon cannot record it")
    hello = reply_of(service.handle(request(p.Hello(), "hello"))).result
    assert isinstance(hello, p.HelloResult) and hello.journal_error == journal.failed
    assert reply_of(service.handle(request(p.ListTasks(), "list-2"))).ok  # reads go on


async def test_a_decision_the_journal_cannot_record_is_not_applied(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, _, path = journaled
    registry = service.registry
    task = registry.open_external("deploy")
    prompt = registry.open_prompt(task.id, "Deploy?")
    assert service.write() is None
    path.unlink()
    _, code, text = error_of(service.handle(
        request(p.Answer(prompt_id=prompt.id, text="approve"), "answer")))
    assert code == "JOURNAL_FAILED" and "deleted or replaced" in text
    assert registry.get(task.id).status is TaskStatus.BLOCKED  # nobody heard "approve"


async def test_replies_remembered_by_the_journal_outlive_the_service(
    journaled: tuple[CommandService, Journal, Path],
) -> None:
    service, journal, _ = journaled
    frames = request(p.Open(description="deploy"), "open-1")
    first = service.handle(frames)
    assert service.write() is None
    # A new service on the same journal (a restarted daemon) answers the retry from it.
    restarted = CommandService(make_registry(), journal=journal)
    restarted.start()
    try:
        assert restarted.handle(frames) == Handled(first.reply, None)
        assert len(restarted.registry) == 0
    finally:
        restarted.stop()
        await restarted.registry.close()
