"""Ask one question and wait for its answer with plain blocking sockets: no event loop,
no mirror, no snapshot.

For one-shot processes that ask once and exit (an agent's hook, for every tool call it
gates): subscribe first, take the daemon's greeting as proof the subscription is live,
ask, then read the event stream for the question's end. A gap in the stream, a daemon
restart or a silent daemon is settled by looking the task up, so an answer is never
missed, and a daemon restarting on its journal is waited for (the subscription reconnects
by itself) until the question's own deadline; every ending is the one `ExternalTask.ask`
gives (see `calls.settle`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import zmq

from core import protocol as p
from core.client import calls
from core.client.calls import LOCAL_GRACE, NoWordInTime, settle
from core.errors import AskerGone, TaskdeckError, Unavailable
from core.model import PromptClosed, PromptState, Question, TaskChanged

if TYPE_CHECKING:
    from core.client.blocking import SyncClient
    from core.model import Prompt

SILENT_AFTER = 3.0
"""Heartbeats without a word before the task is looked up (the mirror's `DISCONNECTED_AFTER`)."""

WATCH_EVERY = 0.5
"""Seconds between two looks at whether the one waiting for the answer is still there."""


def ask_and_wait(
    client: SyncClient,
    task_id: int,
    question: Question,
    *,
    lease: float | None = None,
    on_asked: Callable[[Prompt], None] | None = None,
    gone: Callable[[], str | None] | None = None,
) -> Prompt:
    """Ask `question` on an external task and block until it is answered.

    `lease`: the task's lease, renewed every third of it while waiting. `on_asked` is
    called with the prompt once the daemon has accepted it. `gone`, asked every
    `WATCH_EVERY` seconds, says why the answer would reach nobody any more (None while
    it would); the wait then ends with `AskerGone`, the question still open for the
    caller to close.

    Raises:
        PromptTimedOut: nobody answered within the timeout and there is no default.
        NoWordInTime: nor did the daemon say so within `LOCAL_GRACE` after it.
        InvalidState: the task was aborted (or ended) while waiting.
        NotPending: the prompt was cancelled.
        Unrecorded: it was answered, but the daemon's journal failed to record it.
        Unavailable: the daemon did not greet the subscription, or stopped answering.
        AskerGone: `gone` said the answer would reach nobody.
    """
    sub = _subscribe(client)
    try:
        beat = client.heartbeat
        if not sub.poll(int(beat * SILENT_AFTER * 1000), zmq.POLLIN):
            raise Unavailable(f"no heartbeat from {client.connection.events}")  # type: ignore[union-attr]
        epoch, seq = _position(sub.recv_multipart())
        prompt = client._do(calls.ask(task_id, question))
        if on_asked is not None:
            on_asked(prompt)
        answered = _follow(client, sub, prompt, epoch, seq, question.timeout, lease, gone)
        return calls.recorded(answered, client.hello())
    finally:
        sub.close(linger=0)


def _subscribe(client: SyncClient) -> zmq.Socket[Any]:
    conn = client._refresh_connection()
    sub = client._ctx.socket(zmq.SUB)
    try:
        client._subscribe(sub, conn.events)
    except BaseException:
        sub.close(linger=0)
        raise
    return sub


def _position(frames: list[bytes]) -> tuple[int | None, int | None]:
    """The (epoch, seq) a PUB message shows; (None, None) when it cannot be read."""
    if len(frames) == 2:
        topic, data = frames
        try:
            if topic == p.HEARTBEAT_TOPIC:
                beat = p.HEARTBEAT_DECODER.decode(data)
                return beat.epoch, beat.seq
            if topic == p.EVENT_TOPIC:
                event = p.EVENT_DECODER.decode(data)
                return event.epoch, event.seq
        except msgspec.DecodeError:
            pass
    return None, None


def _follow(
    client: SyncClient, sub: zmq.Socket[Any], asked: Prompt, epoch: int | None,
    seq: int | None, timeout: float | None, lease: float | None,
    gone: Callable[[], str | None] | None = None,
) -> Prompt:
    """Read events until the asked prompt closes; look the task up when the stream has a hole."""
    now = time.monotonic()
    deadline = None if timeout is None else now + timeout + LOCAL_GRACE
    renew = None if lease is None else lease / 3
    next_renewal = None if renew is None else now + renew
    next_watch = None if gone is None else now
    silent_after = client.heartbeat * SILENT_AFTER
    heard = now
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            closed = _look_up(client, asked)
            if closed is not None:
                return closed
            raise NoWordInTime(
                f"nobody answered within {timeout:g}s (and no word from the daemon)"
            )
        if gone is not None and next_watch is not None and now >= next_watch:
            why = gone()
            if why is not None:
                raise AskerGone(why)
            next_watch = now + WATCH_EVERY
        if next_renewal is not None and renew is not None and now >= next_renewal:
            with contextlib.suppress(TaskdeckError):  # gone or ended: the events will say
                client.request(p.LeaseHeartbeat(task_id=asked.task_id))
            next_renewal = now + renew
        waits = [silent_after - (now - heard)]
        waits += [t - now for t in (deadline, next_renewal, next_watch) if t is not None]
        if not sub.poll(max(1, int(min(waits) * 1000)), zmq.POLLIN):
            if time.monotonic() - heard >= silent_after:  # a silent daemon: ask it directly
                closed = _look_up(client, asked, gone_ok=True)
                heard = time.monotonic()
                if closed is not None:
                    return closed
            continue
        heard = time.monotonic()
        frames = sub.recv_multipart()
        got_epoch, got_seq = _position(frames)
        hole = got_seq is None or got_epoch != epoch or (
            seq is not None and (got_seq > seq + 1 or (frames[0] == p.HEARTBEAT_TOPIC
                                                       and got_seq > seq)))
        if frames[0] == p.EVENT_TOPIC and not hole:
            seq = got_seq
            body = p.EVENT_DECODER.decode(frames[1]).body
            match body:
                case PromptClosed(task=task, prompt=closed) if closed.id == asked.id:
                    return settle(asked, closed, task)
                case TaskChanged(task=task) if task.id == asked.task_id and task.status.is_ended:
                    hole = True  # its questions end with it: read how
                case _:
                    continue
        if hole:
            epoch, seq = got_epoch, got_seq
            closed = _look_up(client, asked, gone_ok=True)
            if closed is not None:
                return closed


def _look_up(client: SyncClient, asked: Prompt, *, gone_ok: bool = False) -> Prompt | None:
    """The asked prompt's ending from the daemon's own record; None while it is pending.

    With `gone_ok`, a daemon that does not answer (stopped, or restarting on its journal)
    counts as pending: the subscription reconnects by itself and the deadline still holds.
    """
    try:
        task, prompts = client.get(asked.task_id)
    except Unavailable:
        if gone_ok:
            return None
        raise
    for prompt in prompts:
        if prompt.id == asked.id:
            if prompt.state is PromptState.PENDING and calls._same_question(asked, prompt):
                return None
            return settle(asked, prompt, task)
    raise calls._question_lost(asked)
