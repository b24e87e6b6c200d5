"""What an in-process agent sees of the registry: its own task and the tools to act on it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from core.model import Prompt, Task

if TYPE_CHECKING:
    from core.registry import Registry


class AgentContext:
    """Handed to `async def agent(ctx)`; every call acts on the agent's own task."""

    def __init__(self, registry: Registry, task_id: int) -> None:
        self._registry = registry
        self.task_id = task_id

    @property
    def task(self) -> Task:
        """A copy of the task as it is now."""
        return self._registry.get(self.task_id)

    @property
    def description(self) -> str:
        """What the task was asked to do."""
        return self._registry.get(self.task_id).description

    async def ask(
        self,
        question: str,
        *,
        choices: Sequence[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> str:
        """Block on a question to a person and return the answer's text.

        Raises:
            PromptTimedOut: nobody answered within `timeout` and there is no default.
        """
        return await self._registry.ask(
            self.task_id, question, choices=choices, timeout=timeout, default=default
        )

    async def ask_prompt(
        self,
        question: str,
        *,
        choices: Sequence[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> Prompt:
        """Like `ask`, but returns the answered prompt: its reason and who answered too."""
        return await self._registry.ask_prompt(
            self.task_id, question, choices=choices, timeout=timeout, default=default
        )

    def add_tokens(self, prompt: int = 0, completion: int = 0) -> None:
        """Count tokens this task spent."""
        self._registry.add_tokens(self.task_id, prompt, completion)

    def progress(self, text: str | None) -> None:
        """Say in a few words what the task does now (None clears it)."""
        self._registry.set_progress(self.task_id, text)

    def spawn(self, agent: str, description: str, *, timeout: float | None = None) -> int:
        """Start a sub-task under this one; returns its id."""
        me = self._registry.get(self.task_id)
        task = self._registry.submit(
            agent, description, parent_id=self.task_id, created_by=me.agent, timeout=timeout
        )
        return task.id

    async def wait(
        self,
        ids: Iterable[int],
        *,
        mode: Literal["all", "any"] = "all",
        timeout: float | None = None,
    ) -> dict[int, Task]:
        """Wait for sub-tasks, blocked (holding no slot); returns those that ended."""
        wanted = list(ids)
        self._registry.block_on_subtasks(self.task_id)
        try:
            return await self._registry.wait(wanted, mode=mode, timeout=timeout)
        finally:
            self._registry.unblock_from_subtasks(self.task_id)
