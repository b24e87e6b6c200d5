"""Random sequences of registry operations, with every invariant checked after each step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.errors import AlreadyAnswered, InvalidState, NotPending, UnknownPrompt
from core.mirror import Mirror
from core.model import BlockedReason, EndReason, PromptState, TaskStatus
from core.registry import Registry
from tests.core.conftest import Puppet, Recorder, mirror_state, registry_state, until

LIMIT = 2
ANSWERS = ["approve", "DENY", "Yes", "no", "only on staging"]


class RegistryMachine(RuleBasedStateMachine):
    """Drives one registry on a loop of its own; a model tracks what must be true."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.puppet = Puppet()
        self.registry = Registry(
            max_concurrent=LIMIT, default_timeout=None, epoch=1, agents={"puppet": self.puppet}
        )
        self.recorder = Recorder(self.registry)
        self.mirror = Mirror()
        self.mirror.load(self.registry.snapshot())
        self.applied = 0
        # The model.
        self.parent: dict[int, int | None] = {}
        self.external: set[int] = set()
        self.live: set[int] = set()
        self.results: dict[int, tuple[TaskStatus, EndReason | None, str | None]] = {}
        self.tokens: dict[int, tuple[int, int]] = {}
        self.prompt_state: dict[int, PromptState] = {}
        self.prompt_task: dict[int, int] = {}
        self.replies: dict[int, asyncio.Future[Any]] = {}
        self.waits: dict[int, tuple[asyncio.Future[Any], list[int]]] = {}

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.registry.close())
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    # ------------------------------------------------------------ helpers

    def ready_tasks(self) -> list[int]:
        """In-process tasks running and waiting for a command."""
        return sorted(
            t
            for t in self.live - self.external
            if self.registry.get(t).status is TaskStatus.IN_PROGRESS and t in self.puppet.ready
        )

    def live_external(self, status: TaskStatus | None = None) -> list[int]:
        return sorted(
            t
            for t in self.live & self.external
            if status is None or self.registry.get(t).status is status
        )

    def _end_in_model(self, task_id: int, status: TaskStatus, reason: EndReason | None, text: str | None) -> None:
        self.live.discard(task_id)
        self.results[task_id] = (status, reason, text)
        for prompt_id, owner in self.prompt_task.items():
            if owner == task_id and self.prompt_state[prompt_id] is PromptState.PENDING:
                self.prompt_state[prompt_id] = PromptState.CANCELLED

    def _subtree(self, task_id: int) -> list[int]:
        out = [task_id]
        for child in sorted(t for t, p in self.parent.items() if p == task_id):
            out.extend(self._subtree(child))
        return out

    async def settle(self) -> None:
        """Wait until every agent has caught up with what the registry told it."""
        reg = self.registry
        for task_id in self.results:
            if task_id not in self.external:
                await reg.join(task_id)

        def caught_up() -> bool:
            for task_id in self.live - self.external:
                task = reg.get(task_id)
                if task.status is TaskStatus.IN_PROGRESS and task_id not in self.puppet.ready:
                    return False
            for task_id, (reply, children) in self.waits.items():
                if task_id in self.live and not reply.done() and not (set(children) & self.live):
                    return False
            return True

        await until(caught_up, timeout=1.0)
        self.waits = {k: v for k, v in self.waits.items() if not v[0].done() and k in self.live}

    # -------------------------------------------------------------- rules

    @rule(child=st.booleans(), pick=st.integers(0, 100))
    def submit(self, child: bool, pick: int) -> None:
        live = sorted(self.live)
        parent = live[pick % len(live)] if child and live else None

        async def go() -> int:
            task = self.registry.submit("puppet", "work", parent_id=parent)
            await self.settle()
            return task.id

        task_id = self.run(go())
        self.parent[task_id] = parent
        self.live.add(task_id)
        self.tokens[task_id] = (0, 0)

    @precondition(lambda self: self.ready_tasks())
    @rule(pick=st.integers(0, 100), choices=st.sampled_from([None, ["Yes", "no"], ["go"]]))
    def ask(self, pick: int, choices: list[str] | None) -> None:
        ready = self.ready_tasks()
        task_id = ready[pick % len(ready)]

        async def go() -> tuple[int, asyncio.Future[Any]]:
            reply = self.puppet.run(task_id, lambda ctx: ctx.ask("Proceed?", choices=choices))
            await until(
                lambda: reply.done() or self.registry.get(task_id).blocked_on is not None
            )
            if reply.done():
                reply.result()  # an ask that failed at once raises here
            prompt_id = self.registry.get(task_id).blocked_on.prompt_id
            await self.settle()
            return prompt_id, reply

        prompt_id, reply = self.run(go())
        assert prompt_id not in self.prompt_state, "a prompt id was reused"
        self.prompt_state[prompt_id] = PromptState.PENDING
        self.prompt_task[prompt_id] = task_id
        self.replies[prompt_id] = reply

    @precondition(lambda self: self.live_external(TaskStatus.IN_PROGRESS))
    @rule(pick=st.integers(0, 100))
    def external_ask(self, pick: int) -> None:
        ready = self.live_external(TaskStatus.IN_PROGRESS)
        task_id = ready[pick % len(ready)]
        prompt = self.run(self._async(lambda: self.registry.open_prompt(task_id, "Merge?")))
        self.prompt_state[prompt.id] = PromptState.PENDING
        self.prompt_task[prompt.id] = task_id

    @rule(pick=st.integers(0, 100), text=st.sampled_from(ANSWERS), unknown=st.booleans())
    def answer(self, pick: int, text: str, unknown: bool) -> None:
        """Answer any prompt ever asked: pending, answered (double) or cancelled (stale)."""
        known = sorted(self.prompt_state)
        if unknown or not known:
            with pytest.raises(UnknownPrompt):
                self.registry.answer(10_000 + pick, text)
            return
        prompt_id = known[pick % len(known)]
        expected = self.prompt_state[prompt_id]

        async def go() -> None:
            if expected is PromptState.PENDING:
                answered = self.registry.answer(prompt_id, text, by=f"user{pick}")
                assert answered.state is PromptState.ANSWERED
                assert answered.answer is not None and answered.answer.lower() == text.lower()
                assert answered.answered_by == f"user{pick}"
                reply = self.replies.get(prompt_id)
                if reply is not None:
                    assert await asyncio.wait_for(reply, 5) == answered.answer
                await self.settle()
            elif expected is PromptState.ANSWERED:
                with pytest.raises(AlreadyAnswered):
                    self.registry.answer(prompt_id, text)
            else:
                with pytest.raises(NotPending) as info:
                    self.registry.answer(prompt_id, text)
                assert not isinstance(info.value, AlreadyAnswered)

        before = self.registry.seq
        self.run(go())
        if expected is PromptState.PENDING:
            self.prompt_state[prompt_id] = PromptState.ANSWERED
        else:
            assert self.registry.seq == before, "a refused answer changed something"

    @precondition(lambda self: self.parent)
    @rule(pick=st.integers(0, 100), recursive=st.booleans())
    def abort(self, pick: int, recursive: bool) -> None:
        ids = sorted(self.parent)
        task_id = ids[pick % len(ids)]
        members = self._subtree(task_id) if recursive else [task_id]
        expected = [t for t in members if t in self.live]
        was_queued = {t for t in expected if self.registry.get(t).status is TaskStatus.QUEUED}

        async def go() -> list[int]:
            ended = self.registry.abort(task_id, recursive=recursive)
            for t in ended:  # before settling: it waits for what depends on these ends
                self._end_in_model(t, TaskStatus.FAILED, EndReason.ABORTED, None)
            await self.settle()
            return ended

        ended = self.run(go())
        assert sorted(ended) == sorted(expected)
        for t in ended:
            if self.parent[t] in ended:
                assert ended.index(self.parent[t]) < ended.index(t)
        for t in was_queued:
            assert self.registry.get(t).started_at is None, f"queued task {t} was started"
            assert t not in self.puppet.started

    @precondition(lambda self: self.ready_tasks())
    @rule(pick=st.integers(0, 100), fail=st.booleans())
    def complete(self, pick: int, fail: bool) -> None:
        ready = self.ready_tasks()
        task_id = ready[pick % len(ready)]

        async def go() -> None:
            if fail:
                self.puppet.fail(task_id, RuntimeError("boom"))
            else:
                self.puppet.finish(task_id, f"result {task_id}")
            await self.registry.join(task_id)

        self._end_in_model(
            task_id,
            TaskStatus.FAILED if fail else TaskStatus.FINISHED,
            EndReason.ERROR if fail else None,
            "RuntimeError: boom" if fail else f"result {task_id}",
        )
        self.run(go())
        self.run(self.settle())

    @precondition(
        lambda self: any(
            p in self.ready_tasks() for t, p in self.parent.items() if t in self.live
        )
    )
    @rule(pick=st.integers(0, 100))
    def wait_for_children(self, pick: int) -> None:
        parents = sorted(
            {p for t, p in self.parent.items() if t in self.live and p in self.ready_tasks()}
        )
        task_id = parents[pick % len(parents)]
        children = sorted(t for t, p in self.parent.items() if p == task_id and t in self.live)

        async def go() -> None:
            reply = self.puppet.run(task_id, lambda ctx: ctx.wait(children))
            self.waits[task_id] = (reply, children)
            await until(
                lambda: reply.done()
                or self.registry.get(task_id).blocked_reason is BlockedReason.SUBTASKS
            )
            if reply.done():
                reply.result()  # a wait that failed at once raises here
            await self.settle()

        self.run(go())

    @precondition(lambda self: self.live)
    @rule(pick=st.integers(0, 100), prompt=st.integers(0, 50), completion=st.integers(0, 50))
    def add_tokens(self, pick: int, prompt: int, completion: int) -> None:
        live = sorted(self.live)
        task_id = live[pick % len(live)]
        self.registry.add_tokens(task_id, prompt, completion)
        p, c = self.tokens[task_id]
        self.tokens[task_id] = (p + prompt, c + completion)

    @rule(child=st.booleans(), pick=st.integers(0, 100))
    def open_external(self, child: bool, pick: int) -> None:
        live = sorted(self.live)
        parent = live[pick % len(live)] if child and live else None
        task = self.run(
            self._async(lambda: self.registry.open_external("ci", parent_id=parent, lease=1000))
        )
        self.parent[task.id] = parent
        self.live.add(task.id)
        self.external.add(task.id)
        self.tokens[task.id] = (0, 0)

    @precondition(lambda self: self.live_external())
    @rule(pick=st.integers(0, 100), fail=st.booleans())
    def end_external(self, pick: int, fail: bool) -> None:
        live = self.live_external()
        task_id = live[pick % len(live)]
        if fail:
            self.registry.fail(task_id, "broke")
            self._end_in_model(task_id, TaskStatus.FAILED, EndReason.ERROR, "broke")
        else:
            self.registry.finish(task_id, "shipped")
            self._end_in_model(task_id, TaskStatus.FINISHED, None, "shipped")
        self.run(self.settle())

    @precondition(lambda self: self.live - self.external)
    @rule(pick=st.integers(0, 100))
    def finish_refused_for_in_process(self, pick: int) -> None:
        live = sorted(self.live - self.external)
        with pytest.raises(InvalidState):
            self.registry.finish(live[pick % len(live)], "not yours")

    @staticmethod
    async def _async(fn: Callable[[], Any]) -> Any:
        return fn()

    # --------------------------------------------------------- invariants

    @invariant()
    def events_are_numbered_and_within_the_limit(self) -> None:
        self.recorder.assert_clean()
        seqs = [e.seq for e in self.recorder.events]
        assert seqs == list(range(1, self.registry.seq + 1))

    @invariant()
    def slots_and_queue(self) -> None:
        tasks = self.registry.list(limit=None)
        in_process = [t for t in tasks if not t.external]
        running = [t for t in in_process if t.status is TaskStatus.IN_PROGRESS]
        assert len(running) == self.registry.running
        assert len(running) <= LIMIT or self.recorder.overcommitted
        queued = [t.id for t in in_process if t.status is TaskStatus.QUEUED]
        never_started = [t.id for t in in_process if t.started_at is None and t.id in self.live]
        assert sorted(queued) == sorted(never_started)
        started = [t.id for t in in_process if t.started_at is not None]
        if queued:
            assert max(started, default=0) < min(queued), "promotion was not FIFO"
            assert len(running) >= LIMIT, "a task waits in the queue while a slot is free"

    @invariant()
    def prompts_match_blocked_tasks(self) -> None:
        pending = self.registry.pending_prompts()
        by_task: dict[int, list[int]] = {}
        for prompt in pending:
            by_task.setdefault(prompt.task_id, []).append(prompt.id)
            assert self.prompt_state[prompt.id] is PromptState.PENDING
        assert {p.id for p in pending} == {
            i for i, s in self.prompt_state.items() if s is PromptState.PENDING
        }
        for task in self.registry.list(limit=None):
            if task.status is TaskStatus.BLOCKED and task.blocked_reason is BlockedReason.PROMPT:
                assert by_task.get(task.id) == [task.blocked_on.prompt_id]
            else:
                assert task.id not in by_task
                if task.status is TaskStatus.BLOCKED:
                    assert task.blocked_reason is BlockedReason.SUBTASKS
                    assert task.blocked_on is None
        for prompt_id, state in self.prompt_state.items():
            assert self.registry.get_prompt(prompt_id).state is state

    @invariant()
    def ended_tasks_are_final(self) -> None:
        for task in self.registry.list(limit=None):
            assert task.status.is_ended is (task.id not in self.live)
            if task.status.is_ended:
                assert task.ended_at is not None
                assert task.blocked_on is None and task.blocked_reason is None
                status, reason, text = self.results[task.id]
                assert (task.status, task.end_reason) == (status, reason)
                if text is not None:
                    assert text in ((task.result or "") + (task.error or ""))

    @invariant()
    def tokens_are_what_was_added(self) -> None:
        for task_id, (p, c) in self.tokens.items():
            task = self.registry.get(task_id)
            assert (task.prompt_tokens, task.completion_tokens) == (p, c)

    @invariant()
    def mirror_matches(self) -> None:
        for event in self.recorder.events[self.applied :]:
            assert self.mirror.apply(event)
        self.applied = len(self.recorder.events)
        assert mirror_state(self.mirror) == registry_state(self.registry)


RegistryMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_registry_state_machine = RegistryMachine.TestCase
