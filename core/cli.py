"""The `taskdeck` command: serve the daemon, open the dashboard, and script it.

Over 600 lines: one argparse tree and the short command functions it dispatches to, with
the printing they share; each command is a thin call into core.client or core.assembly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import NoReturn

import msgspec

from core import __version__
from core.bridges.command import positive as _positive
from core.errors import (
    BadRequest,
    InvalidState,
    NotPending,
    PromptTimedOut,
    TaskdeckError,
    Unavailable,
    UnknownTask,
)
from core.glyphs import STATUS_GLYPHS, glyph_of
from core.model import REFUSALS, EndReason, Prompt, Task, TaskStatus, Verdict
from core.text import local_time, one_line, printable, printable_lines

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
EXIT_REPLIED = 3
"""`ask`: a free-text reply, printed for the script to read; never an approval."""

ASK_EXITS = {Verdict.APPROVED: EXIT_OK, Verdict.DENIED: EXIT_DENIED, Verdict.REPLIED: EXIT_REPLIED}

ENDING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT") if hasattr(signal, name)
)
"""Signals that end a waiting `ask` or `submit --wait` (hook runners send them on timeout)."""

CLEANUP_SECONDS = 1.5
"""Most time spent telling the daemon a wait ended (it may be stopped or gone)."""

MAX_ID = 2**63 - 1

STATUS_ICONS = STATUS_GLYPHS
"""The status glyphs `ls`, `watch` and `show` print: the dashboard's own (`core.glyphs`)."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, like every other error; `--help` has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {printable(message)} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _window(text: str) -> int:
    """An argparse type: a `--limit` the daemon accepts (its reply would name a wire field)."""
    from core.protocol import MAX_LIST

    value = _count(text)
    if value > MAX_LIST:
        raise argparse.ArgumentTypeError(f"at most {MAX_LIST}, got {value}")
    return value


def _id(kind: str) -> Callable[[str], int]:
    """An argparse type for ids, one check for every command: a whole number, 0 or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_ID:
            raise argparse.ArgumentTypeError(f"not a {kind} id: {text!r}")
        return value

    return parse


_task_id = _id("task")
_prompt_id = _id("prompt")

STATUS_WORDS: dict[str, TaskStatus] = {
    **{status.value: status for status in TaskStatus},
    "running": TaskStatus.IN_PROGRESS,
    "waiting": TaskStatus.BLOCKED,
    "asking": TaskStatus.BLOCKED,
    "done": TaskStatus.FINISHED,
}
"""`ls --status` words: the wire's and the dashboard's."""


def _status(text: str) -> TaskStatus:
    """An argparse type: a status, in the wire's words or the dashboard's."""
    try:
        return STATUS_WORDS[text.strip().lower()]
    except KeyError:
        names = ", ".join(
            "/".join(word for word, status in STATUS_WORDS.items() if status is each)
            for each in TaskStatus
        )
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {names})") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `taskdeck` command; errors become one line on stderr and a non-zero exit."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.handler(args)
    except TaskdeckError as exc:
        print(f"taskdeck: {printable(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("taskdeck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `taskdeck watch | head`
        sys.stderr.close()
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="taskdeck",
        description="A live control deck for trees of AI-agent tasks.",
    )
    parser.add_argument("--version", action="version", version=f"taskdeck {__version__}")
    parser.set_defaults(command=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help: str, **more: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=more.pop("description", help), **more)
        p.set_defaults(command=name, handler=handler)
        p.add_argument(
            "--runtime-dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="directory of the daemon's sockets and connection file "
            "(env TASKDECK_RUNTIME_DIR; default: $XDG_RUNTIME_DIR/taskdeck, "
            "without XDG_RUNTIME_DIR /tmp/taskdeck-UID, made private to you)",
        )
        return p

    p = command("serve", _cmd_serve, "run the daemon in the foreground")
    p.add_argument(
        "--bind",
        metavar="tcp://HOST:PORT",
        help="serve over TCP with CURVE (events on PORT, commands on PORT+1); client keys "
        "allowed are listed in the state dir's `allowed_clients` file, if it exists",
    )
    p.add_argument(
        "--insecure-plain-tcp",
        action="store_true",
        help="serve TCP without encryption or authentication (loopback only)",
    )
    p.add_argument(
        "--max-concurrent", type=int, default=4, metavar="N", help="tasks running at once (default 4)"
    )
    p.add_argument(
        "--task-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="seconds a task may run (default 300; 0: no limit)",
    )
    p.add_argument(
        "--agents",
        action="append",
        default=[],
        metavar="[NAME=]MODULE:ATTR",
        help="register an agent `async def agent(ctx)` (repeatable)",
    )
    p.add_argument(
        "--journal", type=Path, metavar="FILE", help="SQLite journal (default: per-user state dir)"
    )
    p.add_argument("--no-journal", action="store_true", help="keep nothing on disk")
    p.add_argument(
        "--retain",
        type=_count,
        default=10_000,
        metavar="N",
        help="ended tasks kept in memory (default 10000; older ones: journal only)",
    )
    p.add_argument("--workload", choices=["demo"], help="submit a built-in workload")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo agent and workload")
    p.add_argument("--speed", type=float, default=1.0, help="demo speed factor (default 1)")
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # `demo`: die with it
    p.add_argument("--notify", action="append", default=[], metavar="URL",
                   help="send a short notice when a question opens (repeatable): a JSON webhook "
                   "http(s)://HOST/PATH, or any apprise URL (ntfy://, tgram://, mailto://...)")
    p.add_argument("--notify-interval", type=_positive, default=30.0, metavar="SECONDS",
                   help="least time between two notices (default 30; a burst is one notice)")

    p = command("tui", _cmd_tui, "open the dashboard on the running daemon")
    p.add_argument("--theme", help="Textual theme name")

    p = command("demo", _cmd_demo, "start a demo daemon and workload, and open the dashboard")
    p.add_argument("--headless", action="store_true", help="no dashboard: answer automatically")
    p.add_argument("--seconds", type=float, default=20.0, help="headless run length (default 20)")
    p.add_argument("--json", action="store_true", help="headless: print the summary as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo agent and workload")
    p.add_argument("--speed", type=float, default=1.0, help="demo speed factor (default 1)")
    p.add_argument("--theme", help="Textual theme name")

    p = command("ls", _cmd_ls, "list tasks, newest first")
    p.add_argument("--json", action="store_true", help="print a JSON array of task objects")
    p.add_argument(
        "--status",
        type=_status,
        help="only tasks in this status: queued, in_progress (running), blocked (waiting), "
        "finished (done) or failed",
    )
    p.add_argument("--agent", help="only tasks of this agent")
    p.add_argument("--parent", type=_task_id, metavar="ID", help="only sub-tasks of this task")
    p.add_argument("--limit", type=_window, default=100, metavar="N", help="at most this many (default 100)")

    p = command("submit", _cmd_submit, "submit a task to an in-process agent")
    p.add_argument("agent", help="a registered agent (built in: demo, shell)")
    p.add_argument("description", help="what to do (for shell: the command)")
    p.add_argument("--parent", type=_task_id, metavar="ID", help="make it a sub-task of this task")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until the task ends and print its result; exit 0 finished, 1 failed, "
        "2 aborted, timed out or otherwise ended",
    )

    p = command(
        "show",
        _cmd_show,
        "show one task: status, result, its questions and answers, and the decisions about it",
    )
    p.add_argument("task_id", type=_task_id, metavar="TASK_ID", help="the task")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(
        "ask",
        _cmd_ask,
        "ask a person and wait; the exit code is the decision",
        description="Ask a person and wait for the answer, printed on stdout. Exit 0: "
        "approved (a listed choice other than a denial); 1: denied (a choice that reads as "
        f"a refusal: its first word, any case, is one of {', '.join(sorted(REFUSALS))}, "
        "or it starts \"do not\"; or the second of two "
        "choices when the first is no refusal); 2: aborted, timed out, interrupted or an "
        "error; 3: a free-text reply, which is never an approval.",
    )
    p.add_argument("question", help="what to ask")
    p.add_argument(
        "--choices", metavar="A,B", help="comma-separated choices (default: approve,deny)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up after this long (exit 2), even if the daemon does not answer",
    )
    p.add_argument("--parent", type=_task_id, metavar="ID", help="show the question under this task")

    p = command("answer", _cmd_answer, "answer the question a task waits on")
    p.add_argument("task_id", type=_task_id, metavar="TASK_ID", help="the asking task")
    p.add_argument("text", help="a choice (e.g. approve, deny) or any free answer")
    p.add_argument(
        "--prompt", type=_prompt_id, metavar="ID", help="the prompt id (refused if it is not pending)"
    )
    p.add_argument("--reason", help="why (for a denial)")

    p = command("abort", _cmd_abort, "abort a task and its sub-tasks")
    p.add_argument("task_id", type=_task_id, metavar="TASK_ID", help="the task to stop")
    p.add_argument("--only", action="store_true", help="abort this task alone")

    p = command("watch", _cmd_watch, "print task changes as they happen")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = command(
        "history",
        _cmd_history,
        "print who answered or aborted what, and when (from the running daemon, "
        "else from its journal)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array of decisions")
    p.add_argument("--task", type=_task_id, metavar="ID", help="only decisions about this task")
    p.add_argument(
        "--journal", type=Path, metavar="FILE", help="read this journal instead of the daemon"
    )
    p.add_argument("--limit", type=_count, default=200, metavar="N", help="the latest this many (default 200)")

    rules = command("rules", _cmd_rules, "list, add, remove and test approval rules",
                    description="Approval rules decide a question that carries an action "
                    "(an agent's tool call) before anyone is asked: deny beats ask beats allow. "
                    "Patterns use Claude Code's syntax: Bash(npm test *), Edit(src/**), "
                    "Read(./docs/**), WebFetch(domain:example.com), or a bare tool name.")
    rules.set_defaults(rules_command=None)
    each = rules.add_subparsers(title="rules commands", metavar="RULES_COMMAND")

    def rules_command(name: str, help: str) -> argparse.ArgumentParser:
        p = each.add_parser(name, help=help, description=help)
        p.set_defaults(rules_command=name)
        p.add_argument("--runtime-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                       help="as for every client command")
        return p

    p = rules_command("ls", "list every rule: scope, hits, last use, expiry")
    p.add_argument("--json", action="store_true", help="print a JSON array of rules")
    p.add_argument("--agent", metavar="KIND", help="only rules that apply to this agent kind")
    p = rules_command("add", "add a rule; questions waiting that it decides close at once")
    p.add_argument("effect", choices=["allow", "deny", "ask"], help="what the rule does")
    p.add_argument("pattern", metavar="PATTERN", help="e.g. 'Bash(npm test *)'")
    p.add_argument("--agent", metavar="KIND", help="only for this agent kind (claude, codex...)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--session", metavar="ID", help="only in this agent session")
    scope.add_argument("--task", type=_task_id, metavar="ID", help="only in this task's subtree")
    from core.rules_cli import duration

    p.add_argument("--expires", type=duration, metavar="DURATION",
                   help="stop deciding after this long: 90s, 30m, 12h, 7d")
    p.add_argument("--everything", action="store_true",
                   help="allow a pattern that matches every use of its tool")
    p = rules_command("rm", "remove a rule")
    p.add_argument("rule_id", type=_id("rule"), metavar="ID", help="the rule's id (rules ls)")
    p = rules_command("test", "which rule would decide an action, and why (exit 0 allow, "
                      "1 deny, 3 a person is asked)")
    p.add_argument("action", metavar="ACTION",
                   help="written as Tool(input): 'Bash(npm test)', 'Edit(src/a.py)'")
    p.add_argument("--agent", default="claude", metavar="KIND",
                   help="the agent kind asking (default claude)")
    p.add_argument("--session", metavar="ID", help="the agent session asking")
    p.add_argument("--task", type=_task_id, metavar="ID", help="the task asking")
    p.add_argument("--cwd", metavar="DIR", help="the agent's working directory (for paths)")

    from core.bridges.command import add_arguments as hook_arguments

    hook_arguments(command("hook", _cmd_hook, "answer an agent's hook: one JSON event on stdin"))
    from core.bridges.hook import DEFAULT_IDLE_MINUTES, DEFAULT_TIMEOUT

    integrate = command(
        "integrate", _cmd_integrate, "write taskdeck's hooks into Claude Code's or Codex's settings"
    )
    integrate.add_argument("agent", choices=["claude", "codex"], help="the agent to integrate")
    where = integrate.add_mutually_exclusive_group()
    where.add_argument("--settings", type=Path, metavar="FILE", help="claude: this settings file")
    where.add_argument(
        "--project", type=Path, metavar="DIR",
        help="claude: DIR/.claude/settings.local.json (this machine only, kept out of git)",
    )
    where.add_argument(
        "--user", action="store_true",
        help="claude: your own ~/.claude/settings.json (the default)",
    )
    where.add_argument(
        "--codex-home", type=Path, metavar="DIR",
        help="codex: this CODEX_HOME (default $CODEX_HOME, else ~/.codex)",
    )
    integrate.add_argument(
        "--verify", nargs="?", const="codex", metavar="CODEX",
        help="codex: then ask this Codex binary (default: codex on PATH) whether it trusts them",
    )
    integrate.add_argument("--remove", action="store_true", help="take taskdeck's hooks out again")
    integrate.add_argument(
        "--print", action="store_true", help="show the change as a diff and write nothing"
    )
    integrate.add_argument(
        "--gate", action="append", default=[], metavar="TOOL",
        help="passed to the hook: ask a person before every use of this tool (repeatable)",
    )
    integrate.add_argument(
        "--timeout", type=_positive, metavar="SECONDS",
        help=f"passed to the hook: wait this long for a person (default {DEFAULT_TIMEOUT:g}); "
        "the hook's own timeout is set 10 s above it",
    )
    integrate.add_argument(
        "--idle", type=_positive, metavar="MINUTES",
        help=f"passed to the hook: a silent session ends as lost (default {DEFAULT_IDLE_MINUTES:g})",
    )

    p = command("mcp", _cmd_mcp, "serve MCP tools over stdio: an MCP host asks a person here")
    p.add_argument("--key", metavar="KEY", help="the session task's key, to find it again "
                   "(default: mcp:HOST:PID of the host process)")
    p.add_argument("--lease", type=_positive, default=30.0, metavar="SECONDS",
                   help="the session's task fails as lost this long after this server stops "
                   "(default 30)")
    p.add_argument("--timeout", type=_positive, default=None, metavar="SECONDS",
                   help="close a question nobody answered this long (a permission prompt or "
                   "approval denies, ask_human says timed_out) unless its call gives timeout_s "
                   "(default: wait until answered, or until the host cancels the call or leaves)")

    web = command("web", _cmd_web, "serve the dashboard to browsers (a token in the URL)")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; others need --public)")
    web.add_argument("--port", type=int, default=8020, help="port (default 8020; 0: any free)")
    web.add_argument("--public", action="store_true",
                     help="allow an address other than loopback (prefer an SSH tunnel or a TLS "
                     "proxy)")
    web.add_argument("--public-url", metavar="URL",
                     help="the address browsers use, if not http://HOST:PORT (behind a proxy)")
    web.add_argument("--max-sessions", type=int, default=4, metavar="N",
                     help="browser sessions at once (default 4)")
    web.add_argument("--idle-minutes", type=_positive, default=15.0, metavar="M",
                     help="close a session after this long without a key or click (default 15)")
    return parser


def _cmd_integrate(args: argparse.Namespace) -> int:
    from core.integrate import run

    return run.main(args)


def _cmd_rules(args: argparse.Namespace) -> int:
    from core.rules_cli import run

    return run(args)


def _cmd_web(args: argparse.Namespace) -> int:
    try:
        from tui.web.server import main as web_main
    except ImportError as exc:
        raise Unavailable(f"taskdeck web needs {exc.name}: pip install 'taskdeck[web]'") from None
    return web_main(args)


def _cmd_hook(args: argparse.Namespace) -> int:
    """Only what the hook needs is imported: agents start it for every event."""
    from core.bridges.command import run

    return run(args)


def _cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP SDK is imported only here: it is most of the start-up an MCP host waits for."""
    from core.mcp.ending import SIGNALS

    SIGNALS.catch()  # first: a host may end us while the SDK loads
    try:
        from core.mcp import server
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "mcp":
            raise
        raise TaskdeckError("taskdeck mcp needs the MCP SDK: pip install 'taskdeck[mcp]'") from None

    return server.main(args)


# ---------------------------------------------------------------- the daemon


def _cmd_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from core.agents import builtin_agents, load_agent
    from core.assembly import Assembly
    from core.journal import default_journal_path
    from core.registry import Registry

    if args.max_concurrent < 1:
        raise BadRequest("--max-concurrent must be at least 1")
    if args.speed <= 0:
        raise BadRequest("--speed must be positive")
    if args.task_timeout < 0:
        raise BadRequest("--task-timeout must not be negative (0: no timeout)")

    def make_registry(first_id: int) -> Registry:
        registry = Registry(
            max_concurrent=args.max_concurrent,
            default_timeout=args.task_timeout or None,
            first_id=first_id,
        )
        for name, agent in builtin_agents(seed=args.seed, speed=args.speed).items():
            registry.register_agent(name, agent)
        if args.agents:
            _importable_here()
        for spec in args.agents:
            name, _, target = spec.rpartition("=")
            try:
                agent = load_agent(target)
            except BadRequest as exc:
                if "no module named" in str(exc):
                    raise BadRequest(
                        f"{exc}; modules are looked up in the current directory ({os.getcwd()}) "
                        "and on PYTHONPATH"
                    ) from None
                raise
            registry.register_agent(name or target.rpartition(":")[2], agent)
        return registry

    notifier = _notifier(args)  # a bad --notify URL stops here, before anything is bound
    deck = Assembly(
        make_registry,
        runtime_dir=_runtime_dir(args),
        journal=None if args.no_journal else args.journal or default_journal_path(),
        retain=args.retain,
        bind=args.bind,
        allow_plain_tcp=args.insecure_plain_tcp,
    ).open()
    if deck.journal is not None and deck.journal.fresh:
        print(f"taskdeck: journal {deck.journal.path} is new or empty: history starts fresh",
              file=sys.stderr, flush=True)
    watchdog = None
    if args.parent_pid is not None:
        from core.demo import stop_when_orphaned

        watchdog = asyncio.get_running_loop().create_task(stop_when_orphaned(args.parent_pid))
    workload = None
    if args.workload == "demo":
        from core.workload import run_demo_workload

        workload = asyncio.get_running_loop().create_task(
            run_demo_workload(deck.registry, seed=args.seed, speed=args.speed)
        )
    notices = None

    def ready(daemon) -> None:
        nonlocal notices
        _announce(daemon)
        if notifier is not None:
            notices = asyncio.get_running_loop().create_task(notifier.run())

    try:
        await deck.serve(on_ready=ready)
    finally:
        for background in (workload, watchdog, notices):
            if background is not None:
                background.cancel()
    return EXIT_OK


def _notifier(args: argparse.Namespace):
    """The `--notify` follower of this daemon, or None without `--notify`."""
    if not args.notify:
        return None
    from core.notify import Batcher, Notifier, make_sender

    return Notifier(make_sender(args.notify), _runtime_dir(args),
                    Batcher(interval=args.notify_interval))


def _importable_here() -> None:
    """Let `--agents mypkg.agents:fn` find `mypkg` in the current directory, as `python -m` does.

    The `taskdeck` script's own folder is first on sys.path, not the directory it runs in.
    """
    here = os.getcwd()
    if not any(os.path.abspath(entry or ".") == here for entry in sys.path):
        sys.path.insert(0, here)


def _announce(daemon) -> None:
    info = daemon.connection
    print(
        f"taskdeck: serving events on {info.events}, commands on {info.commands} "
        f"(pid {info.pid}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )


def _runtime_dir(args: argparse.Namespace) -> Path:
    from core.runtime import default_runtime_dir

    return args.runtime_dir or default_runtime_dir()


# ---------------------------------------------------------------- dashboard


def _cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_dashboard

    return run_dashboard(args.runtime_dir, theme=args.theme)


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import DemoDaemon, run_headless

    if args.headless:
        summary = asyncio.run(run_headless(seconds=args.seconds, seed=args.seed, speed=args.speed))
        print(msgspec.json.encode(summary).decode() if args.json else summary)
        return EXIT_OK
    with DemoDaemon(seed=args.seed, speed=args.speed) as demo:
        print(demo.hint(), file=sys.stderr)
        from tui.app import run_dashboard

        code = run_dashboard(demo.runtime_dir, theme=args.theme)
    print("taskdeck: demo stopped", file=sys.stderr)
    return code


# ---------------------------------------------------------------- scripting


def _client(args: argparse.Namespace, name: str = "cli"):
    """An async client, for commands that follow the live mirror (ask, watch)."""
    from core.client import Client

    return Client(args.runtime_dir, client_name=name)


def _sync_client(args: argparse.Namespace, name: str = "cli"):
    """A blocking client, for one-shot commands: no event loop, the shortest round trip."""
    from core.client import SyncClient

    return SyncClient(args.runtime_dir, client_name=name)


def _cmd_ls(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        tasks = client.list_tasks(
            agent=args.agent, status=args.status, parent_id=args.parent, limit=args.limit
        )
    if args.json:
        sys.stdout.write(msgspec.json.encode(tasks).decode() + "\n")
        return EXIT_OK
    if not tasks:
        print("no tasks")
        return EXIT_OK
    print(LS_HEADER)
    for task in tasks:
        print(_ls_line(task))
    return EXIT_OK


LS_HEADER = f"{'ID':>5} {'PARENT':>6}  {'STATUS':<13} {'AGENT':<10} {'TOKENS':>8}  DESCRIPTION"
"""The columns of `taskdeck ls`; the status column fits `in_progress` and its icon."""


def _ls_line(task: Task) -> str:
    """One `ls` row, and under it the question a blocked task asks or a failed one's error."""
    parent = "" if task.parent_id is None else str(task.parent_id)
    line = (
        f"{task.id:>5} {parent:>6}  {glyph_of(task)} {task.status.value:<11} "
        f"{printable(task.agent[:10]):<10} {task.tokens:>8,}  {one_line(task.description)}"
    )
    if task.blocked_on is not None:
        line += f"\n{'':>15}? {_question(task.blocked_on.question, task.blocked_on.choices)}"
        line += f"  (prompt {task.blocked_on.prompt_id})"
        if task.blocked_on.summary is not None:
            line += f"\n{'':>15}  action: {one_line(task.blocked_on.summary)}"
    elif task.error:
        line += f"\n{'':>15}{one_line(task.error)}"
    return line


def _question(question: str, choices: Sequence[str]) -> str:
    return f"{one_line(question)}  [{' / '.join(printable(c) for c in choices)}]"


def _cmd_submit(args: argparse.Namespace) -> int:
    if args.wait:
        return asyncio.run(_submit_and_wait(args))
    with _sync_client(args) as client:
        task = client.submit(args.agent, args.description, parent_id=args.parent)
    print(f"{task.id} {task.status.value}")
    return EXIT_OK


async def _submit_and_wait(args: argparse.Namespace) -> int:
    """Submit, follow the task in the live mirror until it ends, and exit by its outcome."""
    submitted: list[Task] = []

    async def until_ended() -> int:
        changed = asyncio.Event()
        evicted: set[int] = set()

        def on_change(changes) -> None:
            evicted.update(changes.evicted)
            changed.set()

        await client.start_mirror(on_change)
        await client.wait_synced(timeout=max(5.0, client.request_timeout * client.retries))
        task = await client.submit(args.agent, args.description, parent_id=args.parent)
        submitted.append(task)
        print(f"taskdeck: submitted as task {task.id}; waiting for it to end", file=sys.stderr,
              flush=True)
        while True:
            changed.clear()
            current = client.mirror.tasks.get(task.id)
            if current is not None and current.status.is_ended:
                return _outcome(current)
            if current is None and task.id in evicted:  # ended and already let go
                return _outcome((await client.get(task.id))[0])
            await changed.wait()

    async def interrupted(name: str) -> int:
        if submitted:
            task_id = submitted[0].id
            print(f"taskdeck: stopped waiting ({name}); task {task_id} goes on "
                  f"(taskdeck abort {task_id} stops it)", file=sys.stderr)
        else:
            print(f"taskdeck: interrupted by {name}", file=sys.stderr)
        return EXIT_ERROR

    async with _client(args, "submit") as client:
        return await _until_signal(until_ended(), interrupted)


def _outcome(task: Task) -> int:
    """Print how a task ended and return its exit code: 0 finished, 1 failed, 2 otherwise."""
    if task.status is TaskStatus.FINISHED:
        print(printable_lines(task.result or ""))
        return EXIT_OK
    failed = task.end_reason in (None, EndReason.ERROR)
    why = "failed" if failed else task.end_reason.value
    print(f"taskdeck: task {task.id} {why}: {one_line(task.error or '')}".rstrip(": "),
          file=sys.stderr)
    return EXIT_DENIED if failed else EXIT_ERROR


async def _until_signal(
    work: Coroutine[object, object, int], on_signal: Callable[[str], Awaitable[int]]
) -> int:
    """Run `work`; if TERM, HUP, INT or QUIT arrives first, cancel it and return `on_signal`.

    A hook runner that gives up kills its command: the wait must end cleanly then,
    not linger until the daemon notices. A second signal leaves at once.
    """
    loop = asyncio.get_running_loop()
    caught: asyncio.Future[str] = loop.create_future()

    def on(sig: signal.Signals) -> None:
        if caught.done():
            os._exit(EXIT_ERROR)  # asked twice: no more cleanup
        caught.set_result(sig.name)

    for sig in ENDING_SIGNALS:
        loop.add_signal_handler(sig, on, sig)
    job = loop.create_task(work)
    try:
        await asyncio.wait((job, caught), return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        job.cancel()
        await asyncio.wait((job,))
        return await on_signal(caught.result())
    finally:
        for sig in ENDING_SIGNALS:
            loop.remove_signal_handler(sig)


async def _bounded(coro: Awaitable[object]) -> None:
    """Best-effort bookkeeping once the outcome is known: it may not keep the caller waiting."""
    try:
        await asyncio.wait_for(coro, CLEANUP_SECONDS)
    except (TaskdeckError, TimeoutError):
        pass


def _cmd_ask(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise BadRequest("the question must not be empty")
    choices = None
    if args.choices is not None:
        choices = [c.strip() for c in args.choices.split(",") if c.strip()]
        if not choices:
            raise BadRequest("--choices needs at least one choice, comma-separated")
    if args.timeout is not None and args.timeout <= 0:
        raise BadRequest("--timeout must be positive")
    return asyncio.run(_ask(args, choices))


async def _ask(args: argparse.Namespace, choices: list[str] | None) -> int:
    """Open a task, ask, and turn the answer into an exit code; every other end is 2."""
    from core import protocol as p
    from core.client import NoWordInTime

    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    opened: list = []  # the ExternalTask, once the daemon has made it

    def asked(prompt: Prompt) -> None:
        where = f" --runtime-dir {shlex.quote(str(args.runtime_dir))}" if args.runtime_dir else ""
        picks = "|".join(printable(shlex.quote(c)) for c in prompt.choices)
        print(
            f"taskdeck: asked as task {prompt.task_id} "
            f"(answer with: taskdeck answer{where} {prompt.task_id} {picks})",
            file=sys.stderr,
            flush=True,
        )

    async def asking() -> int:
        async with asyncio.timeout_at(deadline):
            task = await client.open_task(args.question, agent="ask", parent_id=args.parent)
        opened.append(task)
        try:
            left = None if deadline is None else max(0.001, deadline - loop.time())
            prompt = await task.ask(args.question, choices=choices, timeout=left, on_asked=asked)
        except PromptTimedOut as exc:
            said = f"no answer within {args.timeout:g}s"
            if isinstance(exc, NoWordInTime):
                said += " (and no word from the daemon)"
            await _bounded(task.fail(said))
            raise PromptTimedOut(said) from None
        except (NotPending, InvalidState) as exc:  # aborted, cancelled, or lost in a restart
            raise InvalidState(f"nothing was approved: {exc}") from None
        except TaskdeckError as exc:  # e.g. refused choices: end the task we opened
            await _bounded(task.fail(str(exc)))
            raise
        answer = prompt.answer or ""
        print(printable(answer))
        verdict = prompt.verdict
        if verdict is Verdict.DENIED:
            if prompt.reason:
                print(f"reason: {printable(prompt.reason)}", file=sys.stderr)
            result = f"denied: {prompt.reason or answer}"
        elif verdict is Verdict.REPLIED:
            result = f"replied: {answer}"
        else:
            result = answer
        await _bounded(task.finish(result[: p.MAX_RESULT]))
        return ASK_EXITS[verdict]

    async def interrupted(name: str) -> int:
        if opened:  # close the question now: nobody may answer a caller that has gone
            await _bounded(opened[0].fail(f"ask interrupted by {name}; nobody is waiting"))
        print(f"taskdeck: interrupted by {name}; the question is closed", file=sys.stderr)
        return EXIT_ERROR

    async with _client(args, "ask") as client:
        try:
            return await _until_signal(asking(), interrupted)
        except TimeoutError:  # the daemon did not even open the task in time
            raise PromptTimedOut(
                f"no answer within {args.timeout:g}s (the daemon did not respond)"
            ) from None


def _cmd_answer(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        prompt = client.answer_task(
            args.task_id, args.text, reason=args.reason, prompt_id=args.prompt
        )
    said = f"answered prompt {prompt.id} of task {prompt.task_id}: {printable(prompt.answer or '')}"
    if prompt.verdict is Verdict.REPLIED:
        offered = " / ".join(printable(choice) for choice in prompt.choices)
        said += f" (a free reply, not one of {offered}: it neither approves nor denies)"
    else:
        said += f" ({prompt.verdict.value})" if prompt.verdict else ""
    print(said)
    return EXIT_OK


def _cmd_abort(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        ended = client.abort(args.task_id, only=args.only)
    if ended:
        print(f"aborted {len(ended)} task{'s' if len(ended) != 1 else ''}: "
              + " ".join(str(i) for i in ended))
    else:
        print(f"task {args.task_id} had already ended; nothing to abort")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        task, prompts = client.get(args.task_id)
        try:
            decisions = client.history(task_id=args.task_id, limit=MAX_SHOWN_DECISIONS)
        except InvalidState:  # the daemon keeps no journal
            decisions = None
    if args.json:
        detail = {"task": task, "prompts": prompts, "decisions": decisions}
        sys.stdout.write(msgspec.json.encode(detail).decode() + "\n")
        return EXIT_OK
    print("\n".join(_show_lines(task, prompts, decisions)))
    return EXIT_OK


MAX_SHOWN_DECISIONS = 1000
"""Decisions `show` asks for: far more than one task gathers."""


def _show_lines(task: Task, prompts: list[Prompt], decisions: list | None) -> list[str]:
    """`taskdeck show`: the task, each question with who answered what, and the decisions."""

    def field(name: str, value: object) -> None:
        if value is None or value == "":
            return
        text = printable_lines(value if isinstance(value, str) else str(value))
        lines.extend(
            f"  {name if n == 0 else '':<12}{line}" for n, line in enumerate(text.split("\n"))
        )

    lines = [f"task {task.id}  {glyph_of(task)} {task.status.value}"]
    field("description", task.description)
    field("agent", task.agent)
    field("parent", task.parent_id)
    field("created by", task.created_by)
    field("ended as", task.end_reason.value if task.end_reason else None)
    field("result", task.result)
    field("error", task.error)
    field("progress", task.progress)
    field("tokens", f"{task.tokens:,} ({task.prompt_tokens:,} prompt, "
                    f"{task.completion_tokens:,} completion)")
    field("created", local_time(task.created_at))
    field("started", local_time(task.started_at))
    field("ended", local_time(task.ended_at))
    for prompt in prompts:
        lines.append(f"prompt {prompt.id}  {prompt.state.value}")
        field("question", _question(prompt.question, prompt.choices))
        if prompt.action is not None:
            action = prompt.action
            field("action", f"{action.agent} {action.tool}: {one_line(action.summary)}")
            field("in", action.cwd)
        if prompt.answer is not None:
            verdict = prompt.verdict.value if prompt.verdict else ""
            field("answer", f"{prompt.answer}  ({verdict})")
        field("reason", prompt.reason)
        field("by", prompt.answered_by)
        field("at", local_time(prompt.answered_at))
    if decisions is None:
        lines.append("decisions: not recorded (the daemon keeps no journal)")
    elif not decisions:
        lines.append("decisions: none")
    else:
        lines.append("decisions:")
        lines.extend(f"  {_history_line(entry)}" for entry in decisions)
    return lines


def _cmd_watch(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _client(args, "watch") as client:
            last_state = None
            queue: asyncio.Queue = asyncio.Queue()
            await client.start_mirror(queue.put_nowait)
            while True:
                changes = await queue.get()
                if changes.state != last_state:
                    print(f"-- {changes.state.value}", file=sys.stderr, flush=True)
                    last_state = changes.state
                ids = sorted(client.mirror.tasks) if changes.resynced else sorted(changes.task_ids)
                for task_id in ids:
                    task = client.mirror.tasks.get(task_id)
                    if task is None:
                        continue
                    if args.json:
                        sys.stdout.write(
                            msgspec.json.encode({"seq": client.mirror.seq, "task": task}).decode()
                            + "\n"
                        )
                    else:
                        print(_watch_line(task))
                sys.stdout.flush()

    return asyncio.run(run())


def _watch_line(task: Task) -> str:
    line = (
        f"{task.id:>5} {glyph_of(task)} {task.status.value:<11} "
        f"{printable(task.agent):<8} {one_line(task.description)}"
    )
    if task.blocked_on is not None:
        line += f"  ? {one_line(task.blocked_on.question)}"
    elif task.error:
        line += f"  ({one_line(task.error)})"
    return line


def _cmd_history(args: argparse.Namespace) -> int:
    entries = _history_from_journal(args) if args.journal else None
    if entries is None:
        try:
            entries = _history_from_daemon(args)
        except Unavailable:  # no daemon: read the journal it left behind
            entries = _history_from_journal(args)
    if args.json:
        sys.stdout.write(msgspec.json.encode(entries).decode() + "\n")
        return EXIT_OK
    if not entries:
        print("no decisions recorded")
    for entry in entries:
        print(_history_line(entry))
    return EXIT_OK


def _history_from_daemon(args: argparse.Namespace) -> list:
    from core.protocol import MAX_HISTORY
    from core.runtime import read_connection

    read_connection(args.runtime_dir)  # Unavailable when no daemon runs: read its journal
    if args.limit > MAX_HISTORY:
        raise BadRequest(
            f"a running daemon sends at most {MAX_HISTORY:,} decisions; "
            "read more from its journal file with --journal PATH"
        )
    with _sync_client(args) as client:
        entries = client.history(task_id=args.task, limit=args.limit)
        if args.task is not None and not entries:
            client.get(args.task)  # an unknown task is an error, as in every other command
    return entries


def _history_from_journal(args: argparse.Namespace) -> list:
    from core.journal import Journal, default_journal_path

    path = args.journal or default_journal_path()
    if not path.exists():
        raise Unavailable(f"no daemon running and no journal at {path}")
    journal = Journal.open(path)
    try:
        entries = journal.history(task_id=args.task, limit=args.limit)
        if args.task is not None and not entries and journal.task(args.task) is None:
            raise UnknownTask(f"no task {args.task}")
        return entries
    finally:
        journal.close()


def _history_line(entry) -> str:
    when = local_time(entry.ts)
    target = f"task {entry.task_id}" if entry.task_id is not None else ""
    if entry.prompt_id is not None:
        target += f" prompt {entry.prompt_id}"
    line = (f"{when}  {entry.action:<7} {target:<22} {printable(entry.detail)}"
            f"  by {printable(entry.by)}")
    question = entry.question
    if question:
        line += f"\n{'':<21}? {printable(question)}"
    summary = entry.summary
    if summary:
        line += f"\n{'':<21}  action: {printable(summary)}"
    return line


if __name__ == "__main__":
    sys.exit(main())
