"""Ties a shell command's whole process group to the daemon's life (Linux).

Run as `python -I -S leash.py DAEMON_PID COMMAND` in a new session. It becomes the group
leader and execs `/bin/sh -c COMMAND`, so `$$` is still the group id, after two steps:

- the leader asks for SIGKILL when its parent (the daemon) dies: the parent-death
  signal survives `exec`, so the shell dies with the daemon;
- it forks a watcher in the same group that asks for SIGTERM when *its* parent (the
  leader, then the shell) dies. When that happens and the daemon is gone too, the
  watcher SIGKILLs the group: everything the command started in the background, which
  the parent-death signal alone would miss, since it is not inherited across fork.

While the daemon lives the watcher only exits (when the shell ends or the group gets a
signal): stopping the group then stays the daemon's job, with its grace period.

The parent-death signal fires when the *thread* that forked dies; the daemon forks from
its event loop's thread, which lives as long as it serves. Processes that leave the
group (`setsid`) are out of reach.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _gone(pid: int) -> bool:
    """True when `pid` has exited (a zombie its parent has not reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def _watch(daemon: int, leader: int) -> None:
    """The watcher: wait for a signal, then SIGKILL the group if the daemon is gone."""

    def on_signal(signum: int, frame: object) -> None:
        if _gone(daemon):
            os.killpg(0, signal.SIGKILL)
        os._exit(0)

    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # never hold the command's output pipe open
    os.closerange(3, 1 << 16)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != leader:  # the shell ended before the signal was armed
        on_signal(signal.SIGTERM, None)
    while True:
        signal.pause()


def main(argv: list[str]) -> None:
    daemon, command = int(argv[0]), argv[1]
    if _die_with_parent(signal.SIGKILL):
        if os.getppid() != daemon:  # the daemon died before the signal was armed
            os._exit(137)
        leader = os.getpid()
        if os.fork() == 0:
            try:
                _watch(daemon, leader)
            finally:
                os._exit(0)
    os.execv("/bin/sh", ["/bin/sh", "-c", command])


if __name__ == "__main__":
    main(sys.argv[1:])
