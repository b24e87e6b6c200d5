"""A local copy of the registry kept from a snapshot plus the events after it (no I/O)."""

from __future__ import annotations

import collections
import operator

from core.model import (
    Event,
    Prompt,
    PromptClosed,
    PromptOpened,
    PromptState,
    Snapshot,
    Task,
    TaskChanged,
    TaskCreated,
    TasksEvicted,
    Tree,
)


_ID = operator.attrgetter("id")


class OutOfSync(Exception):
    """The event cannot be applied: a seq gap or a new epoch. Take a fresh snapshot."""


class Mirror:
    """Tasks and pending prompts as of `seq`, with a children index for tree views.

    Feed it `load(snapshot)` then `apply(event)` for each later event; events at or
    below the snapshot's seq are skipped, a gap or new epoch raises `OutOfSync`.
    """

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.seq = 0
        self.tasks: dict[int, Task] = {}
        self.prompts: dict[int, Prompt] = {}
        """Pending prompts by id."""
        self.history: dict[int, list[Prompt]] = collections.defaultdict(list)
        """Closed prompts seen since the mirror started, by task id."""
        self.children: dict[int | None, list[int]] = collections.defaultdict(list)
        """Child ids by parent id (None for roots), oldest first."""

    @property
    def synced(self) -> bool:
        """True once a snapshot has been loaded."""
        return self.epoch is not None

    def load(self, snapshot: Snapshot, tree: Tree | None = None) -> None:
        """Replace everything with the snapshot's state.

        Prompt history survives a resync within one daemon run, not a new epoch:
        a daemon restarted without a journal hands out the same ids again.

        Args:
            tree: the snapshot's task tree as the daemon sent it (protocol 2); without
                it the children index is built from the tasks.
        """
        if snapshot.epoch != self.epoch:
            self.history = collections.defaultdict(list)
        self.epoch = snapshot.epoch
        self.seq = snapshot.seq
        self.tasks = {t.id: t for t in snapshot.tasks}
        self.prompts = {p.id: p for p in snapshot.prompts}
        children: collections.defaultdict[int | None, list[int]]
        if tree is not None:
            # Taken as sent: a pass over 100,000 tasks to build it was a fifth of a join.
            children = collections.defaultdict(list, tree.children)
            children[None] = tree.roots
        else:
            ordered = snapshot.tasks
            ids = list(self.tasks)
            if len(ids) != len(ordered) or ids != sorted(ids):
                # Daemons send tasks in id order: checking costs a tenth of sorting them.
                ordered = sorted(self.tasks.values(), key=_ID)
            children = collections.defaultdict(list)
            for task in ordered:
                children[task.parent_id].append(task.id)
        self.children = children

    def apply(self, event: Event) -> bool:
        """Apply one event; returns False when it was already reflected.

        Raises:
            OutOfSync: the event is from another epoch or skips a seq.
        """
        if event.epoch != self.epoch:
            raise OutOfSync(f"epoch changed ({self.epoch} -> {event.epoch})")
        if event.seq <= self.seq:
            return False
        if event.seq != self.seq + 1:
            raise OutOfSync(f"missed events {self.seq + 1}..{event.seq - 1}")
        self.seq = event.seq
        body = event.body
        match body:
            case TaskCreated(task=task):
                self._put(task)
            case TaskChanged(task=task):
                self._put(task)
            case PromptOpened(task=task, prompt=prompt):
                self._put(task)
                self.prompts[prompt.id] = prompt
            case PromptClosed(task=task, prompt=prompt):
                self._put(task)
                self.prompts.pop(prompt.id, None)
                self.history[prompt.task_id].append(prompt)
            case TasksEvicted(task_ids=ids):
                for task_id in ids:
                    task = self.tasks.pop(task_id, None)
                    if task is not None:
                        siblings = self.children.get(task.parent_id)
                        if siblings and task_id in siblings:
                            siblings.remove(task_id)
                    self.children.pop(task_id, None)
                    self.history.pop(task_id, None)
        return True

    def _put(self, task: Task) -> None:
        if task.id not in self.tasks:
            self.children[task.parent_id].append(task.id)
        self.tasks[task.id] = task

    def pending_oldest_first(self) -> list[Prompt]:
        """Pending prompts, oldest first (the inbox order)."""
        return [self.prompts[i] for i in sorted(self.prompts)
                if self.prompts[i].state is PromptState.PENDING]

    def ancestors(self, task_id: int) -> list[Task]:
        """The task's ancestors, root first."""
        out = []
        task = self.tasks.get(task_id)
        while task is not None and task.parent_id is not None:
            task = self.tasks.get(task.parent_id)
            if task is not None:
                out.append(task)
        return out[::-1]

    def subtree_ids(self, task_id: int) -> list[int]:
        """The task and its descendants, parents first."""
        out = []
        stack = [task_id]
        while stack:
            current = stack.pop()
            if current in self.tasks:
                out.append(current)
                stack.extend(reversed(self.children.get(current, ())))
        return out

    def subtree_tokens(self, task_id: int) -> int:
        """Tokens spent by the task and all its descendants."""
        return sum(self.tasks[i].tokens for i in self.subtree_ids(task_id))
