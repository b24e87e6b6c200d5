"""The `taskdeck` command: serve the daemon, open the dashboard, and script it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import msgspec

from core import __version__
from core.errors import (
    BadRequest,
    InvalidState,
    NotPending,
    PromptTimedOut,
    TaskdeckError,
    Unavailable,
)
from core.model import Task, TaskStatus

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_ERROR = 2

STATUS_ICONS = {
    TaskStatus.QUEUED: "○",
    TaskStatus.IN_PROGRESS: "●",
    TaskStatus.BLOCKED: "?",
    TaskStatus.FINISHED: "✓",
    TaskStatus.FAILED: "✗",
}


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too, like every other error; `--help` has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


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
        print(f"taskdeck: {exc}", file=sys.stderr)
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

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(command=name, handler=handler)
        p.add_argument(
            "--runtime-dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="directory of the daemon's sockets and connection file "
            "(env TASKDECK_RUNTIME_DIR; default: the per-user runtime dir)",
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
    p.add_argument("--status", help="only tasks in this status")
    p.add_argument("--agent", help="only tasks of this agent")
    p.add_argument("--parent", type=int, metavar="ID", help="only sub-tasks of this task")
    p.add_argument("--limit", type=_window, default=100, metavar="N", help="at most this many (default 100)")

    p = command("submit", _cmd_submit, "submit a task to an in-process agent")
    p.add_argument("agent", help="a registered agent (built in: demo, shell)")
    p.add_argument("description", help="what to do (for shell: the command)")
    p.add_argument("--parent", type=int, metavar="ID", help="make it a sub-task of this task")

    p = command(
        "ask",
        _cmd_ask,
        "ask a person and wait: exit 0 on approve or a free answer, 1 on deny, 2 otherwise",
    )
    p.add_argument("question", help="what to ask")
    p.add_argument(
        "--choices", metavar="A,B", help="comma-separated choices (default: approve,deny)"
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    p.add_argument("--parent", type=int, metavar="ID", help="show the question under this task")

    p = command("answer", _cmd_answer, "answer the question a task waits on")
    p.add_argument("task_id", type=int, metavar="TASK_ID", help="the asking task")
    p.add_argument("text", help="a choice (e.g. approve, deny) or any free answer")
    p.add_argument(
        "--prompt", type=int, metavar="ID", help="the prompt id (refused if it is not pending)"
    )
    p.add_argument("--reason", help="why (for a denial)")

    p = command("abort", _cmd_abort, "abort a task and its sub-tasks")
    p.add_argument("task_id", type=int, metavar="TASK_ID", help="the task to stop")
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
    p.add_argument("--task", type=int, metavar="ID", help="only decisions about this task")
    p.add_argument(
        "--journal", type=Path, metavar="FILE", help="read this journal instead of the daemon"
    )
    p.add_argument("--limit", type=_count, default=200, metavar="N", help="the latest this many (default 200)")
    return parser


# ---------------------------------------------------------------- the daemon


def _cmd_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from core.agents import builtin_agents, load_agent
    from core.journal import Journal, default_journal_path
    from core.registry import Registry
    from core.retention import Retention
    from core.server import serve_forever

    if args.max_concurrent < 1:
        raise BadRequest("--max-concurrent must be at least 1")
    if args.speed <= 0:
        raise BadRequest("--speed must be positive")
    if args.task_timeout < 0:
        raise BadRequest("--task-timeout must not be negative (0: no timeout)")
    journal = None
    if not args.no_journal:
        journal = Journal.open(args.journal or default_journal_path())
        if journal.fresh:
            print(f"taskdeck: journal {journal.path} is new or empty: history starts fresh",
                  file=sys.stderr, flush=True)
    registry = Registry(
        max_concurrent=args.max_concurrent,
        default_timeout=args.task_timeout or None,
        first_id=journal.next_id() if journal is not None else 1,
    )
    for name, agent in builtin_agents(seed=args.seed, speed=args.speed).items():
        registry.register_agent(name, agent)
    for spec in args.agents:
        name, _, target = spec.rpartition("=")
        registry.register_agent(name or target.rpartition(":")[2], load_agent(target))
    if journal is not None:
        journal.attach(registry)
        registry.restore(*journal.load())
        journal.commit()
    retention = Retention(registry, max_ended=args.retain)
    retention.start()
    watchdog = None
    if args.parent_pid is not None:
        from core.demo import stop_when_orphaned

        watchdog = asyncio.get_running_loop().create_task(stop_when_orphaned(args.parent_pid))
    workload = None
    if args.workload == "demo":
        from core.workload import run_demo_workload

        workload = asyncio.get_running_loop().create_task(
            run_demo_workload(registry, seed=args.seed, speed=args.speed)
        )
    try:
        await serve_forever(
            registry,
            _runtime_dir(args),
            bind=args.bind,
            allow_plain_tcp=args.insecure_plain_tcp,
            journal=journal,
            on_ready=_announce,
        )
    finally:
        for background in (workload, watchdog):
            if background is not None:
                background.cancel()
        retention.stop()  # serve_forever has already closed the registry
        if journal is not None:
            journal.close()
    return EXIT_OK


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
        f"{task.id:>5} {parent:>6}  {STATUS_ICONS[task.status]} {task.status.value:<11} "
        f"{task.agent[:10]:<10} {task.tokens:>8,}  {task.description}"
    )
    if task.blocked_on is not None:
        line += f"\n{'':>15}? {task.blocked_on.question}  [{' / '.join(task.blocked_on.choices)}]"
        line += f"  (prompt {task.blocked_on.prompt_id})"
    elif task.error:
        line += f"\n{'':>15}{task.error}"
    return line


def _cmd_submit(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        task = client.submit(args.agent, args.description, parent_id=args.parent)
    print(f"{task.id} {task.status.value}")
    return EXIT_OK


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

    async def run() -> int:
        async with _client(args, "ask") as client:
            task = await client.open_task(args.question, agent="ask", parent_id=args.parent)
            try:
                prompt = await task.ask(args.question, choices=choices, timeout=args.timeout)
            except PromptTimedOut:
                await _quietly(task.fail(f"no answer within {args.timeout:g}s"))
                print(f"taskdeck: no answer within {args.timeout:g}s", file=sys.stderr)
                return EXIT_ERROR
            except (NotPending, InvalidState):
                print("taskdeck: the question was aborted", file=sys.stderr)
                return EXIT_ERROR
            except asyncio.CancelledError:
                await _quietly(task.fail("interrupted"))
                raise
            except TaskdeckError as exc:  # e.g. refused choices: end the task we opened
                await _quietly(task.fail(str(exc)))
                raise
            print(prompt.answer)
            if prompt.is_denial:
                if prompt.reason:
                    print(f"reason: {prompt.reason}", file=sys.stderr)
                await _quietly(task.fail(f"denied: {prompt.reason or prompt.answer}"))
                return EXIT_DENIED
            await _quietly(task.finish(prompt.answer or ""))
            return EXIT_OK

    return asyncio.run(run())


async def _quietly(coro) -> None:
    """Best-effort bookkeeping after the answer is known: the answer matters, not this."""
    try:
        await coro
    except TaskdeckError:
        pass


def _cmd_answer(args: argparse.Namespace) -> int:
    with _sync_client(args) as client:
        prompt = client.answer_task(
            args.task_id, args.text, reason=args.reason, prompt_id=args.prompt
        )
    print(f"answered prompt {prompt.id} of task {prompt.task_id}: {prompt.answer}")
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
    line = f"{task.id:>5} {STATUS_ICONS[task.status]} {task.status.value:<11} {task.agent:<8} {task.description}"
    if task.blocked_on is not None:
        line += f"  ? {task.blocked_on.question}"
    elif task.error:
        line += f"  ({task.error})"
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
        return client.history(task_id=args.task, limit=args.limit)


def _history_from_journal(args: argparse.Namespace) -> list:
    from core.journal import Journal, default_journal_path

    path = args.journal or default_journal_path()
    if not path.exists():
        raise Unavailable(f"no daemon running and no journal at {path}")
    journal = Journal.open(path)
    try:
        return journal.history(task_id=args.task, limit=args.limit)
    finally:
        journal.close()


def _history_line(entry) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(entry.ts).strftime("%Y-%m-%d %H:%M:%S")
    target = f"task {entry.task_id}" if entry.task_id is not None else ""
    if entry.prompt_id is not None:
        target += f" prompt {entry.prompt_id}"
    line = f"{when}  {entry.action:<7} {target:<22} {entry.detail}  by {entry.by}"
    question = getattr(entry, "question", None)
    return f"{line}\n{'':<21}? {question}" if question else line


if __name__ == "__main__":
    sys.exit(main())
