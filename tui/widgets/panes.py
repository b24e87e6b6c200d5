"""Read-only panes: the highlighted task's details and the inbox of pending prompts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

from core.glyphs import glyph_of
from core.model import Prompt, PromptState, Task, TaskStatus
from tui.actions import inbox_line
from tui.actions import render as render_action
from tui.messages import JumpToTask
from tui.view import (
    STATUS_LABELS,
    TreeView,
    answer_line,
    by_rule,
    choice_hint,
    clip,
    elapsed_of,
    format_elapsed,
    is_asking,
    shown,
    shown_line,
)

if TYPE_CHECKING:
    from core.protocol import Decision

DETAIL_CHARS = 60
"""Characters of a decision's detail shown (an abort's list of ended ids can be long)."""


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    return f"{format_elapsed(now - ts)} ago"


class DetailPane(Static):
    """Everything known about the highlighted task, with its question and answer history."""

    def __init__(self, view: TreeView, clock: Callable[[], float], *, id: str | None = None):
        super().__init__(id=id)
        self.view = view
        self.clock = clock
        self.task_id: int | None = None
        self.history: list[Prompt] = []
        """Prompts of the shown task as fetched from the daemon, oldest first."""
        self.decisions: list[Decision] = []
        """Answers and aborts that touched the shown task, from the daemon's journal."""
        self.fetched_for: int | None = None
        """The task whose history was last fetched (it may since have changed)."""

    def show(
        self,
        task_id: int | None,
        history: list[Prompt] | None = None,
        decisions: list[Decision] | None = None,
    ) -> None:
        """Show a task (keeping what was fetched for it if it is the same task)."""
        if task_id != self.task_id:
            self.history = []
            self.decisions = []
        self.task_id = task_id
        if decisions is not None:
            self.decisions = decisions
        if history is not None:
            self.history = history
            self.fetched_for = task_id
        self.redraw()

    def redraw(self) -> None:
        """Render again from the mirror (call when the task changed)."""
        task = self.view.mirror.tasks.get(self.task_id) if self.task_id is not None else None
        if task is None:
            content = Content.styled("no task highlighted", "$text-muted")
        else:
            content = Content.assemble(*self._render_task(task))
        # A layout pass of the whole screen is needed only when the pane's height
        # changes; skipping it otherwise cuts a j/k press from ~13 ms to ~3 ms with
        # 10,000 tasks (docs/BENCHMARKS.md, dashboard).
        width = self.content_region.width
        height = len(content.wrap(width)) if width else -1
        self.update(content, layout=height != self.content_region.height)

    def _render_task(self, task: Task) -> list[str | tuple[str, str] | Content]:
        parts: list[str | tuple[str, str] | Content] = []

        def out(text: str, style: str = "") -> None:
            parts.append((shown(text), style))  # every line of the pane passes here

        out(f"{glyph_of(task)} #{task.id} ", style="bold")
        out(task.agent, style="bold")
        ancestors = self.view.mirror.ancestors(task.id)
        if ancestors:
            path = " › ".join(f"{t.agent}#{t.id}" for t in ancestors)
            out(f"  under {path}", style="$text-muted")
        out("\n")
        out(task.description + "\n")

        def field(name: str, value: str, style: str = "") -> None:
            out(f"{name:>9} ", style="$text-muted")
            out(value + "\n", style=style)

        status = STATUS_LABELS[task.status]
        if task.end_reason is not None:
            status += f" ({task.end_reason.value})"
        elif is_asking(task):
            status = "asking you"
        elif task.status is TaskStatus.BLOCKED:
            status = "waiting on its sub-tasks"
        field("status", status, "bold")
        if task.progress:
            field("doing", task.progress)
        if task.result:
            field("result", task.result, "$success")
        if task.error:
            field("error", task.error, "$error")
        subtotal = self.view.subtree.get(task.id, task.tokens)
        field("tokens", f"{task.tokens:,} own · {subtotal:,} in subtree")
        field("", f"{task.prompt_tokens:,} prompt · {task.completion_tokens:,} completion",
              "$text-muted")
        now = self.clock()
        field("elapsed", format_elapsed(elapsed_of(task, now)))
        field("created", f"{_ago(task.created_at, now)} by {task.created_by}")
        field("started", _ago(task.started_at, now))
        field("ended", _ago(task.ended_at, now))
        prompts = {p.id: p for p in self.history}
        for prompt in self.view.mirror.history.get(task.id, []):
            prompts[prompt.id] = prompt
        if task.blocked_on is not None:  # a task asks one question at a time
            pending = self.view.mirror.prompts.get(task.blocked_on.prompt_id)
            if pending is not None:
                prompts[pending.id] = pending
        if prompts:
            out("\nprompts\n", style="bold")
        for prompt in sorted(prompts.values(), key=lambda p: p.id):
            out(f"  ?{prompt.id} ", style="$text-muted")
            out(prompt.question + "\n", style="$warning")
            if prompt.action is not None:
                parts.append(render_action(prompt.action, indent="    ") + "\n")
            if prompt.state is PromptState.PENDING and task.blocked_on is not None:
                out(f"    {choice_hint(prompt.choices)}\n", style="bold")
            elif prompt.state is PromptState.ANSWERED:
                out(*answer_line(prompt))
                out("\n" if by_rule(prompt) else f"  by {prompt.answered_by}\n",
                    style="$text-muted")
            else:
                out(f"    {prompt.state.value.replace('_', ' ')}\n", style="$text-muted")
        if self.decisions:
            out("\ndecisions\n", style="bold")
        for decision in self.decisions:
            self._render_decision(decision, task.id, now, out)
        return parts

    @staticmethod
    def _render_decision(
        decision: Decision, task_id: int, now: float, append: Callable[..., None]
    ) -> None:
        """Two lines: what was decided, then by whom, when and from which process."""
        verb = {"answer": "answered", "abort": "aborted"}.get(decision.action, decision.action)
        detail = clip(decision.detail, DETAIL_CHARS)
        if decision.action == "abort" and decision.task_id not in (None, task_id):
            detail = f"via #{decision.task_id} ({detail})"  # an ancestor's abort ended it
        append(f"  {verb} ", style="bold $error" if decision.action == "abort" else "bold")
        append(detail + "\n")
        where = [f"by {decision.by}", _ago(decision.ts, now)]
        if decision.pid:
            where.append(f"pid {decision.pid}")
        if decision.curve_key:
            where.append(f"key {decision.curve_key[:8]}…")
        append("    " + " · ".join(where) + "\n", style="$text-muted")


class Inbox(OptionList):
    """Every pending prompt, oldest first, with the path of the task that asks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "go to task", show=False, id="inbox.select"),
    ]

    def __init__(self, view: TreeView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self._shown: list[int] | None = None  # None: not drawn yet, even as empty

    def redraw(self) -> None:
        """Rebuild the list when the set or order of pending prompts changed."""
        prompts = self.view.mirror.pending_oldest_first()
        ids = [p.id for p in prompts]
        title = f"Inbox ({len(ids)})"
        if title != self.border_title:
            self.border_title = title  # setting it repaints, even to the same text
        if ids == self._shown:
            return
        highlighted = self.highlighted_option.id if self.highlighted_option else None
        self._shown = ids
        options: list[Option | None] = []
        for prompt in prompts:
            if options:
                options.append(None)  # a separator line between questions
            options.append(Option(self._render_prompt(prompt), id=str(prompt.id)))
        self.set_options(options)
        if not options:
            self.add_option(
                Option(Content.styled("no pending prompts", "$text-muted"), disabled=True)
            )
        else:
            self.highlighted = None
            if highlighted is not None:
                with contextlib.suppress(OptionDoesNotExist):
                    self.highlighted = self.get_option_index(highlighted)
            if self.highlighted is None and self.has_focus:
                self.highlighted = 0  # the highlighted question was answered: the oldest next

    def on_focus(self) -> None:
        """Highlight the oldest question on arrival, so Enter goes to it at once."""
        if self.highlighted is None and self._shown:
            self.highlighted = 0

    def _render_prompt(self, prompt: Prompt) -> Content:
        path = self.view.path_of(prompt.task_id)
        parts: list[str | tuple[str, str]] = []
        for pos, task in enumerate(path):
            if pos:
                parts.append((" › ", "$text-muted"))
            style = "bold $warning" if pos == len(path) - 1 else "$text-muted"
            parts.append((f"{shown_line(task.agent)}#{task.id}", style))
        first, *more = shown(prompt.question).splitlines() or [""]
        parts += ["\n", (f"? {clip(first, 120)}", "$warning")]
        if more:
            parts.append((f" (+{len(more)} lines)", "bold $warning"))
        if prompt.action is not None:
            parts += ["\n", inbox_line(prompt.action)]
        return Content.assemble(*parts)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is None:
            return
        prompt = self.view.mirror.prompts.get(int(event.option.id))
        if prompt is not None:
            self.post_message(JumpToTask(prompt.task_id))

