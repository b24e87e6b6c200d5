"""Messages shared by several dashboard widgets."""

from __future__ import annotations

from textual.message import Message


class JumpToTask(Message):
    """Move the tree's cursor to this task (unfolding and unfiltering as needed)."""

    def __init__(self, task_id: int) -> None:
        super().__init__()
        self.task_id = task_id
