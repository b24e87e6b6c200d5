"""The tasks and prompts in memory, their indexes, and every read of them.

`Registry` builds on these records with the moves that change them; nothing here
changes a status, starts a timer or emits an event, so the reads can be checked
against the indexes alone.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Iterable

from core.errors import BadRequest, InvalidState, UnknownAgent, UnknownPrompt, UnknownTask
from core.history import PromptStore
from core.model import Prompt, PromptState, Task, TaskStatus


class Records:
    """Tasks by id and in their tree, prompts by id and by task, the pending ones."""

    def __init__(self, *, first_id: int = 1) -> None:
        self._tasks: dict[int, Task] = {}
        self._children: dict[int, list[int]] = collections.defaultdict(list)
        self._agent_tasks: collections.Counter[str] = collections.Counter()
        """Tasks in memory per agent name: `list(agent=...)` validates without a scan."""
        self._prompts = PromptStore()
        self._task_prompts: dict[int, int | tuple[int, ...]] = {}
        """Prompt ids by task id, oldest first: a task's history without a scan.

        A task that asked once holds the id itself, one that asked more a tuple: most
        tasks ask once or never, and this is per task held (a 1-tuple is 48 B).
        """
        self._pending: set[int] = set()
        """Ids of the prompts waiting for an answer."""
        self._keys: dict[str, int] = {}
        """The newest task opened with each external key (it may have ended since)."""
        self._next_task_id = first_id
        self._next_prompt_id = first_id

    # ---------------------------------------------------------------- queries

    def get(self, task_id: int) -> Task:
        """A copy of the task with that id.

        Raises:
            UnknownTask: no such task.
        """
        return copy.copy(self._task(task_id))

    def get_prompt(self, prompt_id: int) -> Prompt:
        """A copy of the prompt with that id.

        Raises:
            UnknownPrompt: no such prompt.
        """
        try:
            return copy.copy(self._prompts[prompt_id])
        except KeyError:
            raise UnknownPrompt(f"no prompt {prompt_id}") from None

    def prompts_of(self, task_id: int) -> list[Prompt]:
        """Every prompt the task asked, oldest first: its question and answer history."""
        self._task(task_id)
        return [copy.copy(self._prompts[i]) for i in self._prompt_ids(task_id)]

    def pending_prompts(self) -> list[Prompt]:
        """Prompts waiting for an answer, oldest first."""
        return [
            copy.copy(prompt)
            for pid in sorted(self._pending)
            if (prompt := self._prompts[pid]).state is PromptState.PENDING
        ]

    def children(self, task_id: int) -> list[Task]:
        """Direct sub-tasks, oldest first."""
        self._task(task_id)
        return [copy.copy(self._tasks[c]) for c in self._children.get(task_id, ())]

    def subtree(self, task_id: int) -> list[Task]:
        """The task and all its descendants, parents before children."""
        return [copy.copy(self._tasks[i]) for i in self._subtree_ids(task_id)]

    def subtree_tokens(self, task_id: int) -> int:
        """Tokens spent by the task and all its descendants."""
        return sum(self._tasks[i].tokens for i in self._subtree_ids(task_id))

    def list(
        self,
        *,
        agent: str | None = None,
        status: TaskStatus | str | None = None,
        parent_id: int | None = None,
        roots_only: bool = False,
        limit: int | None = 100,
        before: int | None = None,
        key: str | None = None,
    ) -> list[Task]:
        """Tasks newest first, filtered, at most `limit` of them with ids below `before`.

        With `key`, only the newest task opened with that external key, ended or not (a
        bridge asks whether its session was aborted without reading every task).

        Raises:
            BadRequest: unknown status or a bad window.
            UnknownAgent: no agent of that name is registered or has run.
            UnknownTask: the parent does not exist.
        """
        if status is not None:
            try:
                status = TaskStatus(status)
            except ValueError:
                names = ", ".join(s.value for s in TaskStatus)
                raise BadRequest(f"unknown status {status!r} (one of {names})") from None
        if agent is not None and not self._knows_agent(agent):
            raise UnknownAgent(f"no agent {agent!r}")
        if parent_id is not None:
            self._task(parent_id)
        if limit is not None and limit < 0:
            raise BadRequest("limit must not be negative")
        # Ids only grow, and both indexes keep them in creation order: newest first is reversed.
        candidates = self._tasks if parent_id is None else self._children.get(parent_id, ())
        if key is not None:
            candidates = [self._keys[key]] if key in self._keys else []
        out: list[Task] = []
        for task_id in reversed(candidates):
            if limit is not None and len(out) >= limit:
                break
            task = self._tasks[task_id]
            if before is not None and task_id >= before:
                continue
            if agent is not None and task.agent != agent:
                continue
            if status is not None and task.status is not status:
                continue
            if parent_id is not None and task.parent_id != parent_id:
                continue
            if roots_only and task.parent_id is not None:
                continue
            out.append(copy.copy(task))
        return out

    def find_key(self, key: str) -> Task | None:
        """A copy of the live task opened with this external key, or None."""
        task = self._tasks.get(self._keys.get(key, -1))
        if task is None or task.status.is_ended:
            return None
        return copy.copy(task)

    def __len__(self) -> int:
        return len(self._tasks)

    def _knows_agent(self, name: str) -> bool:
        """True when `list(agent=name)` is a fair question: some task of it is held."""
        return bool(self._agent_tasks[name])

    # ---------------------------------------------------------------- lookups

    def _task(self, task_id: int) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTask(f"no task {task_id}") from None

    def _live(self, task_id: int) -> Task:
        task = self._task(task_id)
        if task.status.is_ended:
            raise InvalidState(f"task {task_id} has {task.status.value}")
        return task

    def _subtree_ids(self, task_id: int) -> list[int]:
        self._task(task_id)
        out = []
        stack = [task_id]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(reversed(self._children.get(current, ())))
        return out

    def _prompt_ids(self, task_id: int) -> tuple[int, ...]:
        """Ids of the prompts the task asked, oldest first."""
        asked = self._task_prompts.get(task_id, ())
        return (asked,) if isinstance(asked, int) else asked

    def _pending_prompt(self, task: Task) -> Prompt | None:
        if task.blocked_on is None:
            return None
        prompt = self._prompts[task.blocked_on.prompt_id]
        return prompt if prompt.state is PromptState.PENDING else None

    # -------------------------------------------------------- adding, dropping

    def _add_task(self, task: Task) -> None:
        self._tasks[task.id] = task
        self._agent_tasks[task.agent] += 1
        if task.parent_id is not None:
            self._children[task.parent_id].append(task.id)
        self._next_task_id = max(self._next_task_id, task.id + 1)
        if task.key is not None:
            self._keys[task.key] = task.id  # tasks come in id order: the newest wins

    def _add_prompt(self, prompt: Prompt) -> None:
        self._prompts.add(prompt)
        task = self._tasks.get(prompt.task_id)
        task_id = prompt.task_id if task is None else task.id  # one int object, not two
        asked = self._task_prompts.get(task_id)
        self._task_prompts[task_id] = (
            prompt.id if asked is None else (*self._prompt_ids(task_id), prompt.id))
        if prompt.state is PromptState.PENDING:
            self._pending.add(prompt.id)
        self._next_prompt_id = max(self._next_prompt_id, prompt.id + 1)

    def _load(self, tasks: Iterable[Task], prompts: Iterable[Prompt]) -> None:
        """Take in history as it was, oldest first."""
        for task in sorted(tasks, key=lambda t: t.id):
            self._add_task(task)
        for prompt in sorted(prompts, key=lambda p: p.id):
            self._add_prompt(prompt)

    def _drop(self, task_ids: Iterable[int]) -> list[int]:
        """Drop the ended subtrees of `task_ids` and their prompts; returns the ids dropped.

        Each id drops its whole subtree, and only when every task in it has ended,
        so no live task is dropped and no kept task loses its parent.
        """
        dropped: list[int] = []
        gone: set[int] = set()
        for task_id in task_ids:
            if task_id in gone or task_id not in self._tasks:
                continue
            subtree = self._subtree_ids(task_id)
            if all(self._tasks[i].status.is_ended for i in subtree):
                dropped.extend(i for i in subtree if i not in gone)
                gone.update(subtree)
        for task_id in dropped:
            task = self._tasks.pop(task_id)
            self._agent_tasks[task.agent] -= 1
            if task.key is not None and self._keys.get(task.key) == task_id:
                del self._keys[task.key]
            self._children.pop(task_id, None)
            if task.parent_id is not None and task.parent_id in self._children:
                siblings = self._children[task.parent_id]
                if task_id in siblings:
                    siblings.remove(task_id)
        for task_id in gone:
            self._prompts.drop(self._prompt_ids(task_id))
            self._task_prompts.pop(task_id, None)
        return dropped
