"""The task tree: a Line API widget that draws only visible rows of the view state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.glyphs import LOOKS, Shown, glyph_of, shown_of
from core.model import Task, TaskStatus
from tui.view import (
    TreeView,
    choice_hint,
    clip,
    elapsed_of,
    format_elapsed,
    format_tokens,
    is_asking,
    short_hint,
    shown_line,
)

DESCRIPTION_MIN = 20
"""Least characters of an asking task's description worth showing before its question."""

RIGHT_WIDTH = 20
"""Cells of the right-hand columns: elapsed, own tokens, subtree tokens."""


def _state_rules() -> str:
    """The colour of each state's glyph (and failure text), from the shared table."""
    rules = []
    for shown, look in LOOKS.items():
        colour = f"${look.colour}" if look.strength == 100 else f"${look.colour} {look.strength}%"
        bold = " text-style: bold;" if look.bold else ""
        rules.append(f"        & > .task-tree--{shown.value} {{ color: {colour};{bold} }}")
    return "\n".join(rules)


def right_columns(elapsed: str, own: str, total: str) -> str:
    """The right-hand columns, aligned the same way in rows and in the header."""
    return f"{elapsed:>6} {own:>6} {total:>6}"


class TaskTree(ScrollView, can_focus=True):
    """Rows of the task tree; keeps a cursor on a task id across rebuilds.

    It renders from a `TreeView` (the state) and changes neither it nor the mirror: it
    moves its cursor and posts `Highlighted`; folds are the app's to make. Only
    rows that are on screen are drawn, so 10,000 tasks cost what 40 do.
    """

    # Priority, like the app's keys: acted on as read, so j then r in one burst
    # answers the task j moved to. Folds change the view, so the app carries them out.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor_down", "down", show=False, id="tree.down", priority=True),
        Binding("k,up", "cursor_up", "up", show=False, id="tree.up", priority=True),
        Binding("pagedown", "page_down", "page down", show=False, id="tree.page_down",
                priority=True),
        Binding("pageup", "page_up", "page up", show=False, id="tree.page_up", priority=True),
        Binding("home,g", "first", "first", show=False, id="tree.first", priority=True),
        Binding("end,G", "last", "last", show=False, id="tree.last", priority=True),
        Binding("enter", "app.toggle_fold", "fold", show=False, id="tree.toggle", priority=True),
        Binding("left,h", "app.fold", "collapse", show=False, id="tree.collapse", priority=True),
        Binding("right,l", "app.unfold", "expand", show=False, id="tree.expand", priority=True),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "task-tree--cursor",
        "task-tree--guide",
        "task-tree--id",
        "task-tree--agent",
        "task-tree--dim",
        *(f"task-tree--{shown.value}" for shown in Shown),
        "task-tree--question",
        "task-tree--keys",
    }

    DEFAULT_CSS = """
    TaskTree {
        background: $surface;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        & > .task-tree--cursor { background: $block-cursor-blurred-background; }
        &:focus > .task-tree--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .task-tree--guide { color: $foreground 30%; }
        & > .task-tree--id { color: $foreground 50%; }
        & > .task-tree--agent { color: $text-secondary; }
        & > .task-tree--dim { color: $foreground 55%; }
""" + _state_rules() + """
        & > .task-tree--question { color: $warning; }
        & > .task-tree--keys { color: $accent; text-style: bold; }
    }
    """

    class Highlighted(Message):
        """The cursor moved to another task (or off every task)."""

        def __init__(self, task_id: int | None) -> None:
            super().__init__()
            self.task_id = task_id

    def __init__(
        self,
        view: TreeView,
        clock: Callable[[], float],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.view = view
        self.clock = clock
        self.cursor_id: int | None = None
        """The highlighted task; survives rebuilds as long as the task has a row."""
        self.connecting = True
        """No snapshot yet: an empty tree says it is connecting, not that there are no tasks."""
        self._cursor_row = 0
        self._scroll_short = False
        """The last scroll to the cursor stopped short: the rows it moved onto were in the
        view but not yet in this widget's scroll range (a key between the two); it is
        done again after the next refresh, or when the rows are next rebuilt."""

    # --------------------------------------------------------------- state

    @property
    def cursor_task(self) -> Task | None:
        """The highlighted task, if any."""
        if self.cursor_id is None:
            return None
        return self.view.mirror.tasks.get(self.cursor_id)

    def rows_changed(self) -> None:
        """The row list was rebuilt: resize, keep the cursor on its task, redraw."""
        rows = self.view.rows
        self.virtual_size = Size(self.size.width, len(rows))
        if self.cursor_id is not None and self.cursor_id in self.view.index:
            moved = self._cursor_row != self.view.index[self.cursor_id]
            self._cursor_row = self.view.index[self.cursor_id]
            if moved or self._scroll_short:  # keep the highlighted task on screen
                self._scroll_cursor_into_view()
        elif rows:
            self._cursor_row = self._landing(min(self._cursor_row, len(rows) - 1))
            landed = rows.at(self._cursor_row)
            self._set_cursor(landed.task_id if landed is not None else None)
        else:
            self._cursor_row = 0
            self._set_cursor(None)
        self.refresh()

    def _landing(self, near: int) -> int:
        """Where the cursor goes when its task lost its row: the nearest row not asking.

        The cursor never moves onto a question by itself: the keys typed next (an `a`
        meant for the question that just left) would answer one nobody looked at.
        Only when every row asks does it take the nearest row anyway.
        """
        rows = self.view.rows
        tasks = self.view.mirror.tasks
        for distance in range(len(rows)):
            for pos in (near - distance, near + distance):
                row = rows.at(pos)
                task = tasks.get(row.task_id) if row is not None else None
                if task is not None and not is_asking(task):
                    return pos
        return near

    def tasks_changed(self, task_ids: Iterable[int]) -> None:
        """Redraw only the rows of these tasks, if they are on screen."""
        rows = self.view.rows
        top = self.scroll_offset.y
        bottom = top + self.size.height
        for task_id in task_ids:
            row = rows.built_position(task_id)  # a row never built was never drawn
            if row is not None and top <= row < bottom:
                self.refresh_line(row)

    def refresh_visible(self) -> None:
        """Redraw the rows on screen (elapsed times move with the clock)."""
        self.refresh()

    def move_to(self, task_id: int) -> None:
        """Put the cursor on a task that has a row and scroll it into view."""
        row = self.view.index.get(task_id)
        if row is None:
            return
        self._move_row(row)

    def _set_cursor(self, task_id: int | None) -> None:
        if task_id != self.cursor_id:
            self.cursor_id = task_id
            self.post_message(self.Highlighted(task_id))

    def _move_row(self, row: int) -> None:
        rows = self.view.rows
        if not rows:
            return
        row = max(0, min(row, len(rows) - 1))
        target = rows.at(row)
        if target is None:
            return
        old = self._cursor_row
        self._cursor_row = row
        self._set_cursor(target.task_id)
        self.refresh_line(old)
        self.refresh_line(row)
        self._scroll_cursor_into_view()

    def _scroll_cursor_into_view(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = round(self.scroll_offset.y)
        # Immediate: the scroll range is already set, and a deferred scroll computed
        # from this frame's offset can be overtaken by the next move.
        if self._cursor_row < top:
            self.scroll_to(y=self._cursor_row, animate=False, immediate=True)
        elif self._cursor_row >= top + height:
            wanted = self._cursor_row - height + 1
            self.scroll_to(y=wanted, animate=False, immediate=True)
            short = round(self.scroll_offset.y) < wanted
            if short and not self._scroll_short:  # once the range has grown: again
                self.call_after_refresh(self._scroll_cursor_into_view)
            self._scroll_short = short
            return
        self._scroll_short = False

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.view.rows))
        self._scroll_cursor_into_view()

    # ------------------------------------------------------------- actions

    def action_cursor_down(self) -> None:
        self._move_row(self._cursor_row + 1)

    def action_cursor_up(self) -> None:
        self._move_row(self._cursor_row - 1)

    def action_page_down(self) -> None:
        self._move_row(self._cursor_row + max(1, self.scrollable_content_region.height - 1))

    def action_page_up(self) -> None:
        self._move_row(self._cursor_row - max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self._move_row(0)

    def action_last(self) -> None:
        self._move_row(len(self.view.rows) - 1)

    async def on_click(self, event: events.Click) -> None:
        row = event.y + round(self.scroll_offset.y)
        if 0 <= row < len(self.view.rows):
            self._move_row(row)
            if event.chain == 2:
                await self.run_action("app.toggle_fold")

    # ------------------------------------------------------------ drawing

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"task-tree--{name}", partial=True)

    def render_line(self, y: int) -> Strip:
        scroll_y = round(self.scroll_offset.y)
        row_index = y + scroll_y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.view.rows:
            return self._empty_line(y, width, base)
        row = self.view.rows.at(row_index)
        task = self.view.mirror.tasks.get(row.task_id) if row is not None else None
        if row is None or task is None:
            return Strip.blank(width, base)
        text = self.render_row(task, row.guide, row.depth, row.has_children, row.collapsed, width)
        style = base
        if row_index == self._cursor_row:
            style = base + self.get_component_rich_style("task-tree--cursor", partial=True)
        segments = list(text.render(self.app.console))
        strip = Strip(segments, cell_len(text.plain)).adjust_cell_length(width)
        return strip.apply_style(style) if style else strip

    def _empty_line(self, y: int, width: int, base: Style) -> Strip:
        """A line of what to do when no row shows: first steps, or how to see hidden rows."""
        if self.view.filter_text:
            lines = ((f"No task matches “{shown_line(self.view.filter_text)}”. "
                      "Esc clears the filter.", ""),)
        elif self.view.hide_finished and self.view.mirror.tasks:
            lines = (("Every task has finished. f shows them.", ""),)
        elif self.connecting:
            lines = (("Connecting to the daemon…", ""),)
        else:
            lines = EMPTY_TEXT
        if y >= len(lines):
            return Strip.blank(width, base)
        words, style = lines[y]
        text = Text(" " + words, style=self._style("dim") if not style else style, no_wrap=True,
                    overflow="ellipsis", end="")
        text.truncate(width, pad=True)
        return Strip(list(text.render(self.app.console)), width).apply_style(base)

    def render_row(
        self,
        task: Task,
        guide: str,
        depth: int,
        has_children: bool,
        collapsed: bool,
        width: int,
    ) -> Text:
        """One row as styled text exactly `width` cells wide."""
        state = shown_of(task).value
        if collapsed:
            marker = "▸"
        elif has_children:
            marker = "▾"
        else:
            marker = "─" if depth else " "
        total = self.view.subtree.get(task.id, task.tokens)
        right = right_columns(
            format_elapsed(elapsed_of(task, self.clock())),
            format_tokens(task.tokens),
            format_tokens(total),
        )
        left = Text(no_wrap=True, overflow="ellipsis", end="")
        left.append(guide + marker, self._style("guide"))
        left.append(glyph_of(task), self._style(state))
        left.append(f" #{task.id} ", self._style("id"))
        left.append(shown_line(task.agent), self._style("agent"))
        left.append("  ")
        avail = max(0, width - RIGHT_WIDTH - 1 - left.cell_len)
        middle = self._middle(task, state, avail, collapsed)
        middle.truncate(avail, overflow="ellipsis", pad=True)
        left.append_text(middle)
        left.append(" ")
        dim = self._style("dim")
        left.append(right, dim if task.status.is_ended else Style())
        left.truncate(width, pad=True)
        return left

    def _middle(self, task: Task, state: str, avail: int, collapsed: bool) -> Text:
        text = Text(no_wrap=True, end="")
        description = shown_line(task.description)
        if is_asking(task) and task.blocked_on is not None:
            asked = task.blocked_on.question
            lines = asked.count("\n") + 1
            question = shown_line(asked)
            if task.blocked_on.summary:  # what it asks leave to do, in the tree's one line
                question += " · " + shown_line(task.blocked_on.summary)
            flag = f"[{lines} lines] " if lines > 1 else ""
            hint = choice_hint(task.blocked_on.choices)
            if len(flag) + len(question) + 2 + len(hint) > avail:
                hint = short_hint(task.blocked_on.choices)
            room = avail - len(flag) - len(question) - 2 - len(hint)
            # The description only if it fits whole or keeps a readable start: the question
            # and its keys come first.
            wanted = min(len(description), DESCRIPTION_MIN)
            if room - 2 >= wanted and not _repeats(description, question):
                text.append(clip(description, room - 2), self._style("dim"))
                text.append("  ")
            if flag:
                text.append(flag, self._style("keys"))
            q_room = max(4, avail - text.cell_len - len(hint) - 2)
            text.append(clip(question, q_room), self._style("question"))
            text.append("  ")
            text.append(hint, self._style("keys"))
            return text
        text.append(description)
        if collapsed:
            hidden = len(self.view.mirror.subtree_ids(task.id)) - 1
            text.append(f"  (+{hidden})", self._style("dim"))
        if task.status is TaskStatus.FAILED:
            reason = task.end_reason.value if task.end_reason is not None else "failed"
            detail = shown_line(task.error or reason)
            text.append(f"  {detail}", self._style(state))
        elif task.status is TaskStatus.IN_PROGRESS and task.progress:
            text.append(f"  · {shown_line(task.progress)}", self._style("dim"))
        elif task.status is TaskStatus.BLOCKED:
            text.append("  waiting for sub-tasks", self._style("waiting"))
        return text


def _repeats(description: str, question: str) -> bool:
    """True when a task's description says what its question says (a `taskdeck ask` task);
    both as drawn on one line."""
    said = description.rstrip("?").lower()
    asked = question.rstrip("?").lower()
    return bool(said) and (said in asked or asked in said)


EMPTY_TEXT = (
    ("No tasks yet. To see some:", "bold"),
    ("", ""),
    ("  taskdeck demo                 agents at work on a demo daemon", ""),
    ("  taskdeck submit shell 'make'  run a command once you approve it here", ""),
    ('  taskdeck ask "Deploy?"        ask from any script; answer here', ""),
)
"""What the tree shows when the daemon holds no task at all."""


def header_text(width: int) -> str:
    """The column header matching `TaskTree` rows of this width."""
    right = right_columns("time", "tok", "Σtok")
    left = "  task"
    return left + " " * max(1, width - len(left) - len(right)) + right

