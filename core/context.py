"""What an in-process agent sees of the registry: its own task and the tools to act on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Literal, Protocol

from core.model import Prompt, Question, Task


class Desk(Protocol):
    """What an agent's context asks of the registry (`Registry` is one), so this module
    needs no import of it."""

    def get(self, task_id: int) -> Task: ...

    async def ask_prompt(self, task_id: int, question: Question) -> Prompt: ...

    def add_tokens(self, task_id: int, prompt: int = 0, completion: int = 0) -> Task: ...

    def set_progress(self, task_id: int, text: str | None) -> Task: ...

    def submit(
        self, agent: str, description: str, *, parent_id: int | None = None,
        created_by: str = "user", timeout: float | None = None,
    ) -> Task: ...

    def block_on_subtasks(self, task_id: int) -> None: ...

    def unblock_from_subtasks(self, task_id: int) -> None: ...

    async def wait(
        self, ids: Iterable[int], *, mode: Literal["all", "any"] = "all",
        timeout: float | None = None,
    ) -> dict[int, Task]: ...


def as_question(
    question: str | Question,
    *,
    choices: Sequence[str] | None = None,
    timeout: float | None = None,
    default: str | None = None,
) -> Question:
    """A `Question` from either a `Question` or its text and keywords (not both)."""
    if isinstance(question, Question):
        if choices is not None or timeout is not None or default is not None:
            raise TypeError("pass a Question or text with keywords, not both")
        return question
    return Question(
        text=question,
        choices=list(choices) if choices is not None else None,
        timeout=timeout,
        default=default,
    )


Agent = Callable[["AgentContext"], Awaitable[object]]
"""An in-process agent: `async def agent(ctx) -> str`."""


class AgentContext:
    """Handed to `async def agent(ctx)`; every call acts on the agent's own task."""

    def __init__(self, registry: Desk, task_id: int) -> None:
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
        question: str | Question,
        *,
        choices: Sequence[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> str:
        """Block on a question to a person and return the answer's text.

        Raises:
            PromptTimedOut: nobody answered within `timeout` and there is no default.
        """
        prompt = await self.ask_prompt(question, choices=choices, timeout=timeout, default=default)
        return prompt.answer or ""

    async def ask_prompt(
        self,
        question: str | Question,
        *,
        choices: Sequence[str] | None = None,
        timeout: float | None = None,
        default: str | None = None,
    ) -> Prompt:
        """Like `ask`, but returns the answered prompt: its reason and who answered too."""
        asked = as_question(question, choices=choices, timeout=timeout, default=default)
        return await self._registry.ask_prompt(self.task_id, asked)

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
