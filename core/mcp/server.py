"""The MCP SDK's low-level server on stdio: lists the tools, checks each call's arguments,
hands it to the host session, and turns what came back into a tool result.

The low-level server, not the decorator API, because every result is built here: a
structured object for our own tools, and for `permission_prompt` exactly one text block
with no structured content, as Claude Code's permission prompt tool contract demands.

Importing the SDK is most of this command's start-up (about 0.5-1.2 s of the 2 s Claude
Code waits for MCP servers in `-p` mode), so `core/cli.py` imports this module only
when `taskdeck mcp` runs, and the daemon is reached only on the first need.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from core import __version__
from core.errors import NotPending, PromptTimedOut, TaskdeckError
from core.mcp import tools
from core.mcp.ending import SIGNALS, HostSignals, leave
from core.mcp.session import Aborted, HostSession, Unknown
from core.model import MAX_TEXT, Action, Question
from core.text import printable

log = logging.getLogger(__name__)

SERVER_NAME = "taskdeck"
"""The name hosts prefix our tools with (`mcp__taskdeck__permission_prompt`)."""

INSTRUCTIONS = (
    "taskdeck shows this session as a task in a person's live task tree. Use ask_human "
    "to ask that person a question and request_approval before a risky action: both wait "
    "for the answer. Show progress with report_progress and the steps of a plan with "
    "start_subtask / finish_subtask. Only a result with approved true is an approval."
)

Result = types.CallToolResult


def _structured(data: dict[str, Any]) -> Result:
    return Result(content=[types.TextContent(type="text", text=json.dumps(data))],
                  structured_content=data)


def _tool_error(text: str) -> Result:
    return Result(content=[types.TextContent(type="text", text=text)], is_error=True)


def _permission_answer(decision: dict[str, Any]) -> Result:
    """Text only: Claude Code refuses any structured content in this tool's result."""
    return Result(content=[types.TextContent(type="text", text=json.dumps(decision))])


class Tools:
    """Carries out each tool call on the host session; one method per tool."""

    def __init__(self, session: HostSession, *, question_timeout: float | None) -> None:
        self.session = session
        self.question_timeout = question_timeout
        """Seconds a question waits when its call names none (`taskdeck mcp --timeout`):
        ask_human and request_approval without `timeout_s`, and every permission prompt.
        None waits until answered, or until the host cancels the call or leaves (either
        closes the question), so a person may take their time without the model going
        ahead on its own."""
        self._calls: dict[str, Callable[[Any], Awaitable[Result]]] = {
            tools.ASK_HUMAN: self.ask_human,
            tools.REQUEST_APPROVAL: self.request_approval,
            tools.REPORT_PROGRESS: self.report_progress,
            tools.START_SUBTASK: self.start_subtask,
            tools.FINISH_SUBTASK: self.finish_subtask,
        }

    async def call(self, name: str, arguments: dict[str, Any] | None) -> Result:
        """One tool call; bad arguments and errors become tool errors the model can read."""
        self.session.called()
        if name == tools.PERMISSION_PROMPT:
            return _permission_answer(await self.permission_prompt(arguments))
        try:
            args = tools.parse(name, arguments)
        except tools.BadArguments as exc:
            return _tool_error(str(exc))
        try:
            return await self._calls[name](args)
        except Aborted as exc:
            return _tool_error(f"this work was aborted in taskdeck ({exc}): stop, do not go on")
        except TaskdeckError as exc:
            return _tool_error(f"{name}: {exc or type(exc).__name__}")

    # ---------------------------------------------------------------- questions

    async def _asked(self, task_id: int | None, question: Question, *, approval: bool) -> Result:
        """Ask and wait; every way it ends reads as a result (never an approval but a yes)."""
        Unanswered = tools.Unanswered
        try:
            target = await self.session.target(task_id)
            prompt = await self.session.ask(target, question)
        except PromptTimedOut as exc:
            return _structured(tools.unanswered(Unanswered.TIMED_OUT, str(exc), approval=approval))
        except Aborted as exc:
            return _structured(tools.unanswered(Unanswered.ABORTED, str(exc), approval=approval))
        except NotPending as exc:
            return _structured(tools.unanswered(Unanswered.CANCELLED, str(exc), approval=approval))
        except Unknown:
            raise  # a wrong subtask_id: a tool error, as for any bad argument
        except TaskdeckError as exc:
            detail = str(exc) or type(exc).__name__
            return _structured(tools.unanswered(Unanswered.UNAVAILABLE, detail, approval=approval))
        return _structured(tools.answered(prompt, approval=approval))

    async def ask_human(self, args: tools.AskHuman) -> Result:
        question = Question(text=args.question, choices=args.choices,
                            timeout=args.timeout_s or self.question_timeout)
        return await self._asked(args.subtask_id, question, approval=False)

    async def request_approval(self, args: tools.RequestApproval) -> Result:
        action = Action(agent="mcp", tool=args.action, input=args.details,
                        cwd=self.session.cwd[:MAX_TEXT] or None)
        text = f"{self.session.host} asks to {tools.what(action)}"
        if args.reason:
            text += f"\n{args.reason}"
        question = Question(text=text[:MAX_TEXT], action=action,
                            timeout=args.timeout_s or self.question_timeout)
        return await self._asked(args.subtask_id, question, approval=True)

    async def permission_prompt(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """Claude Code's decision for one tool call: every failure denies, naming the cause."""
        try:
            args = tools.parse(tools.PERMISSION_PROMPT, arguments)
            assert isinstance(args, tools.PermissionPrompt)
            action = Action(agent="claude", tool=args.tool_name, input=args.input,
                            cwd=self.session.cwd[:MAX_TEXT] or None)
            question = Question(text=tools.permission_question(args.tool_name, action.summary),
                                action=action, timeout=self.question_timeout)
            target = await self.session.target(None)
            prompt = await self.session.ask(target, question)
        except Aborted as exc:
            return tools.deny(f"aborted in taskdeck: {exc}", interrupt=True)
        except PromptTimedOut as exc:
            return tools.deny(f"not approved: {exc} in taskdeck")
        except NotPending as exc:
            return tools.deny(f"not approved: the question was closed in taskdeck ({exc})")
        except (tools.BadArguments, TaskdeckError) as exc:
            return tools.deny(f"taskdeck could not ask a person: {exc}")
        except Exception as exc:  # noqa: BLE001 - an error of ours must deny, never allow
            log.error("permission_prompt denied on an internal error: %r", exc)
            return tools.deny(f"taskdeck could not ask a person: internal error: {exc!r}")
        return tools.permission(prompt, args.input)

    # ---------------------------------------------------------------- reports

    async def report_progress(self, args: tools.ReportProgress) -> Result:
        await self.session.report(args.text, args.prompt_tokens, args.completion_tokens,
                                  args.subtask_id)
        return _structured({"status": "ok"})

    async def start_subtask(self, args: tools.StartSubtask) -> Result:
        task = await self.session.start_subtask(args.description, args.parent_id)
        return _structured({"status": "ok", "subtask_id": task.id})

    async def finish_subtask(self, args: tools.FinishSubtask) -> Result:
        task = await self.session.finish_subtask(args.subtask_id, args.result, args.error)
        return _structured({"status": task.status.value, "subtask_id": task.id})


def build(calls: Tools) -> Server[Any]:
    """The low-level server: tools listed from `tools.TOOLS`, calls handed to `calls`."""
    listed = [
        types.Tool(name=spec.name, description=spec.description, input_schema=spec.input_schema)
        for spec in tools.TOOLS.values()
    ]

    def meet(ctx: Any) -> None:
        params = ctx.session.client_params
        if params is not None:
            calls.session.meet(params.client_info.name, params.client_info.version)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Result:
        meet(ctx)
        return await calls.call(params.name, params.arguments)

    async def initialized(ctx: Any, params: Any) -> None:
        """Open the session's task as soon as the host is known, without holding it up."""
        meet(ctx)
        _background(_open_quietly(calls.session))

    server: Server[Any] = Server(
        SERVER_NAME, version=__version__, instructions=INSTRUCTIONS,
        on_list_tools=list_tools, on_call_tool=call_tool,
    )
    server.add_notification_handler("notifications/initialized", types.NotificationParams,
                                    initialized)
    return server


_pending: set[asyncio.Task[None]] = set()


def _background(coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _open_quietly(session: HostSession) -> None:
    try:
        await session.root()
    except TaskdeckError as exc:  # no daemon yet: each call tries again
        log.warning("the session's task is not open yet: %s", exc)


MAX_LINE = 1 << 24
"""Bytes of one JSON-RPC message from the host (a permission request carries a whole file)."""


class _PipeLines:
    """The host's pipe as async lines, read on the event loop rather than in a thread.

    The SDK's own stdin reader blocks a worker thread, and a cancelled server then waits
    for the next line before it can stop. Claude Code ends its servers with SIGINT, then
    SIGTERM 100 ms later, then SIGKILL: the session's task must be ended within that.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


async def _stdin_lines() -> Any:
    """Stdin as `_PipeLines` when it is a pipe or socket (as hosts start us), else None
    (the SDK's reader: a file or terminal on stdin)."""
    mode = os.fstat(0).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    reader = asyncio.StreamReader(limit=MAX_LINE)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return _PipeLines(reader)


async def serve(session: HostSession, *, question_timeout: float | None = None,
                signals: HostSignals = SIGNALS) -> None:
    """Serve one host on stdin/stdout until it closes the connection or a signal comes."""
    calls = Tools(session, question_timeout=question_timeout)
    server = build(calls)
    me = asyncio.current_task()

    def stop() -> None:
        """The host ending us (Claude Code: SIGINT, SIGTERM 100 ms later): like closing the
        connection, once; a second signal must not cut short the session's ending."""
        if session.host_gone:
            return
        session.host_gone = True
        if me is not None:
            me.cancel()

    with signals.stopping(asyncio.get_running_loop(), stop):
        try:
            async with stdio_server(stdin=await _stdin_lines()) as (read, write):
                relay_in, into_server = anyio.create_memory_object_stream[Any](0)

                async def relay() -> None:
                    """Marks the host gone before the server sees the end of its input, so a
                    question cut short by it ends as lost rather than cancelled."""
                    try:
                        async with read:
                            async for item in read:
                                await relay_in.send(item)
                    finally:
                        session.host_gone = True
                        await relay_in.aclose()

                async with anyio.create_task_group() as group:
                    group.start_soon(relay)
                    await server.run(into_server, write, server.create_initialization_options())
                    group.cancel_scope.cancel()
        except asyncio.CancelledError:
            if not session.host_gone:
                raise
        finally:
            for task in list(_pending):
                task.cancel()
            await session.close()


def main(args: Any) -> NoReturn:
    """`taskdeck mcp`: serve until the host leaves; problems as lines on stderr.

    Never returns: the process leaves as soon as the session is closed (`ending.leave`).
    """
    SIGNALS.catch()  # `core/cli.py` did so before importing the SDK; here for any other way in
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="taskdeck mcp: %(message)s")
    session = HostSession(args.runtime_dir, key=args.key, lease=args.lease)
    status = 0
    try:
        asyncio.run(serve(session, question_timeout=args.timeout))
    except Exception as exc:  # noqa: BLE001 - one readable line, never a traceback
        sys.stderr.write(f"taskdeck mcp: {printable(str(exc))}\n")
        status = 1
    leave(status)
