"""Whether the agent that started a hook is still there.

An agent runs a hook and waits for its answer; if the agent dies (killed, crashed, its
terminal closed), nobody will read that answer, yet the hook would hold its question
open for a person until its own timeout (590 s by default). The hook watches the agent
and closes the question as soon as it is gone.

The agent is the hook's parent, or, when the agent starts hooks through a shell (Claude
Code runs `sh -c COMMAND`), the first ancestor that is not a shell or a plain wrapper:
the shell in between outlives the agent (it waits for the hook), so watching it alone
would see nothing. The agent is gone once it is no longer an ancestor of this process:
a dead process's children are re-parented at once, even while it is an unreaped zombie,
and a recycled pid is never mistaken for it.
"""

from __future__ import annotations

import os
from pathlib import Path

BETWEEN = frozenset({
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox",
    "env", "timeout", "nice", "nohup", "stdbuf", "setsid",
})
"""Process names that stand between an agent and its hook (shells and plain wrappers)."""

PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """A live process's (name, parent pid) from /proc; None when it is gone or unreadable."""
    try:
        data = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    name = data[data.find("(") + 1 : data.rfind(")")]
    fields = data[data.rfind(")") + 2 :].split()
    if len(fields) < 2 or fields[0] in ("Z", "X"):
        return None
    return name, int(fields[1])


class Agent:
    """The process the hook answers, found when the hook starts."""

    def __init__(self, pid: int, name: str, *, by_proc: bool) -> None:
        self.pid = pid
        self.name = name
        self._by_proc = by_proc
        self._parent = os.getppid()

    @classmethod
    def find(cls) -> Agent | None:
        """The agent: the parent, past any shell or wrapper. None when there is nothing to
        watch (already orphaned, or started by init)."""
        pid = os.getppid()
        if pid <= 1:
            return None
        if not PROC.is_dir():  # no /proc: watch the parent alone
            return cls(pid, "parent", by_proc=False)
        name = "parent"
        for _ in range(16):  # a chain of wrappers longer than this is no agent's
            found = _stat(pid)
            if found is None:
                return None
            name, parent = found
            if name not in BETWEEN or parent <= 1:
                break
            pid = parent
        return cls(pid, name, by_proc=True)

    def gone(self) -> str | None:
        """Why the agent is gone, or None while it is still an ancestor of this process."""
        if not self._by_proc:
            return None if os.getppid() == self._parent else self._said()
        pid = os.getppid()
        for _ in range(64):
            if pid == self.pid:
                return None
            found = _stat(pid)
            if pid <= 1 or found is None:
                break
            pid = found[1]
        return self._said()

    def _said(self) -> str:
        return f"the agent went away ({self.name}, pid {self.pid}, exited)"
