"""Each command as data, with no socket in sight: the body to send, the result type the
daemon must answer, and what the caller gets back; and how a reply is read and checked.

The async `Client` and the blocking `SyncClient` differ only in how they move the bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from core import protocol as p
from core.errors import (
    ERRORS_BY_CODE,
    BadRequest,
    InvalidState,
    NotPending,
    PromptTimedOut,
    TaskdeckError,
    Unrecorded,
)
from core.model import (
    Action,
    EndReason,
    Prompt,
    PromptState,
    Question,
    Snapshot,
    Task,
    TaskStatus,
)
from core.policy import Effect, Rule, Ruling

T = TypeVar("T")
R = TypeVar("R", bound=p.Result)


def _raise_error(error: p.Error | None) -> None:
    if error is None:
        raise TaskdeckError("the daemon refused the request without saying why")
    cls = ERRORS_BY_CODE.get(error.code)
    exc = (cls or TaskdeckError)(error.message)
    if cls is None:
        exc.code = error.code
    raise exc


@dataclasses.dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One command: the body to send, the result type the daemon must answer, what to return."""

    body: p.Command
    kind: type[p.Result]
    take: Callable[[Any], T]


def hello() -> _Call[dict[str, Any]]:
    def take(result: p.HelloResult) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(result)
        out.pop("type", None)
        return out

    return _Call(p.Hello(), p.HelloResult, take)


def snapshot() -> _Call[Snapshot]:
    return _Call(p.GetSnapshot(), p.SnapshotResult, lambda r: r.state())


def list_tasks(
    agent: str | None,
    status: TaskStatus | str | None,
    parent_id: int | None,
    limit: int,
    roots_only: bool,
    before: int | None,
    key: str | None = None,
) -> _Call[list[Task]]:
    if status is not None and not isinstance(status, TaskStatus):
        try:
            status = TaskStatus(status)
        except ValueError:
            names = ", ".join(s.value for s in TaskStatus)
            raise BadRequest(f"unknown status {status!r} (one of {names})") from None
    body = p.ListTasks(
        agent=agent,
        status=status,
        parent_id=parent_id,
        limit=limit,
        roots_only=roots_only,
        before=before,
        key=key,
    )
    return _Call(body, p.TasksResult, lambda r: r.tasks)


def get(task_id: int) -> _Call[tuple[Task, list[Prompt]]]:
    return _Call(p.GetTask(task_id=task_id), p.TaskDetail, lambda r: (r.task, r.prompts))


def history(task_id: int | None, limit: int) -> _Call[list[p.Decision]]:
    return _Call(p.History(task_id=task_id, limit=limit), p.HistoryResult, lambda r: r.entries)


def submit(
    agent: str, description: str, parent_id: int | None, timeout: float | None
) -> _Call[Task]:
    body = p.Submit(agent=agent, description=description, parent_id=parent_id, timeout=timeout)
    return _Call(body, p.TaskResult, lambda r: r.task)


def answer(prompt_id: int, text: str, reason: str | None, by: str | None) -> _Call[Prompt]:
    body = p.Answer(prompt_id=prompt_id, text=text, reason=reason, by=by)
    return _Call(body, p.PromptResult, lambda r: r.prompt)


def answer_task(
    task_id: int, text: str, reason: str | None, prompt_id: int | None, by: str | None
) -> _Call[Prompt]:
    body = p.AnswerTask(task_id=task_id, text=text, reason=reason, prompt_id=prompt_id, by=by)
    return _Call(body, p.PromptResult, lambda r: r.prompt)


def abort(task_id: int, only: bool) -> _Call[list[int]]:
    return _Call(p.Abort(task_id=task_id, only=only), p.AbortResult, lambda r: r.task_ids)


def ask(task_id: int, question: Question) -> _Call[Prompt]:
    return _Call(p.Ask.of(task_id, question), p.PromptResult, lambda r: r.prompt)


def add_rule(effect: str, pattern: str, **scope: Any) -> _Call[Rule]:
    try:
        chosen = Effect(effect)
    except ValueError:
        raise BadRequest(f"unknown rule effect {effect!r} (allow, deny or ask)") from None
    return _Call(p.AddRule(effect=chosen, pattern=pattern, **scope), p.RuleResult,
                 lambda r: r.rule)


def remove_rule(rule_id: int, by: str | None) -> _Call[Rule]:
    return _Call(p.RemoveRule(rule_id=rule_id, by=by), p.RuleResult, lambda r: r.rule)


def list_rules() -> _Call[tuple[list[Rule], float]]:
    return _Call(p.ListRules(), p.RulesResult, lambda r: (r.rules, r.now))


def test_rules(action: Action, task_id: int | None) -> _Call[Ruling]:
    return _Call(p.TestRules(action=action, task_id=task_id), p.RulingResult, lambda r: r.ruling)


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _accept(raw: bytes, request_id: str) -> p.Reply | None:
    """The reply to `request_id` read from `raw`; None for a stale reply to another request.

    Raises:
        TaskdeckError: the bytes are not a reply.
    """
    try:
        reply = p.REPLY_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise TaskdeckError(f"the daemon sent an unreadable reply: {exc}") from None
    return reply if reply.id in (request_id, "") else None


def _result(reply: p.Reply, kind: type[R]) -> R:
    """The reply's result, checked to be `kind`.

    Raises:
        TaskdeckError: the daemon's error, as its matching subclass, or a result of another type.
    """
    if not reply.ok:
        _raise_error(reply.error)
    result = reply.result
    if not isinstance(result, kind):
        raise TaskdeckError(
            f"the daemon answered {type(result).__name__} where {kind.__name__} was expected"
        )
    return result


# ------------------------------------------------------- how a question ends

LOCAL_GRACE = 0.5
"""Seconds an `ask` with a timeout waits past it for the daemon's word before giving up alone."""


class NoWordInTime(PromptTimedOut):
    """An `ask`'s own deadline passed before the daemon said its prompt timed out.

    The daemon may be stopped or gone; its own timer closes the prompt once it runs again.
    """


def _same_question(asked: Prompt, seen: Prompt) -> bool:
    """True when `seen` is the very prompt that was asked, not another given its id later.

    Ids alone are not enough: a daemon that lost its last moments in a crash could
    give them again; the task, the question and the time it was asked tell them apart.
    """
    return (
        seen.id == asked.id
        and seen.task_id == asked.task_id
        and seen.question == asked.question
        and seen.created_at == asked.created_at
    )


def _question_lost(asked: Prompt) -> InvalidState:
    return InvalidState(
        f"the daemon no longer knows question {asked.question!r} (prompt {asked.id} of "
        f"task {asked.task_id}): it restarted without it; nothing was approved, ask again"
    )


def settle(asked: Prompt, closed: Prompt, task: Task) -> Prompt:
    """The answered prompt an `ask` returns, once the daemon closed the question it asked.

    Raises:
        PromptTimedOut: nobody answered within the timeout and there is no default.
        InvalidState: the task was aborted (or ended) while waiting, or the daemon
            restarted without the question.
        NotPending: the prompt was cancelled.
    """
    if not _same_question(asked, closed):  # never act on another question's answer
        raise _question_lost(asked)
    if closed.state is PromptState.ANSWERED:
        return closed
    if closed.state is PromptState.TIMED_OUT:
        raise PromptTimedOut(f"nobody answered within {closed.timeout:g}s")
    if task.status.is_ended:
        why = "aborted" if task.end_reason is EndReason.ABORTED else task.status.value
        raise InvalidState(f"task {task.id} was {why}: {task.error or ''}".rstrip(": "))
    raise NotPending(f"prompt {closed.id} was cancelled")


def recorded(answered: Prompt, hello: dict[str, Any]) -> Prompt:
    """The answered prompt (what `settle` returned) an `ask` returns, once the daemon's
    `hello` (asked after the answer arrived) shows its journal still writes.

    A batch's events go out after its commit, even when the commit failed: the answer
    then reached the registry but not the journal, and its answerer was told so. The
    failure is sticky, so a journal error seen after the answer means it may be that
    one: the asker must not act on it, as an in-process agent does not (`Unrecorded`).

    Raises:
        Unrecorded: the daemon reports its journal failed.
    """
    error = hello.get("journal_error")
    if error:
        raise Unrecorded(
            f"prompt {answered.id} was answered ({answered.answer!r}) but the daemon "
            f"cannot record decisions: {error}; nothing was approved"
        )
    return answered
