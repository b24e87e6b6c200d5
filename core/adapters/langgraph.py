"""Run a compiled LangGraph graph under taskdeck: the run is a task, each `interrupt(...)` a
question on it, answered in taskdeck and resumed with `Command(resume=...)`.

Two halves. The mapping (`interruption`, `read_answer`) is pure: an interrupt's value in,
taskdeck questions out; an answered prompt in, the value the graph resumes with out. The
runner (`arun_graph`, `run_graph`) streams the graph, shows the last node that ran as the
task's progress (and counts the tokens of the model messages nodes return), asks, and
resumes, talking to the daemon through `core.client` only.

An Agent Inbox request (`{"action_request": {"action", "args"}, "config": {"allow_accept",
"allow_edit", "allow_respond", "allow_ignore"}, "description"}`, or a list of them) is asked
with taskdeck's own answers, offered only where its config allows them:

    approve            {"type": "accept", "args": None}
    edit               {"type": "edit", "args": {"action": ACTION, "args": EDITED}}
                       (the answer's reason holds the edited args, a JSON object)
    deny [reason]      {"type": "ignore", "args": REASON or None}
    a written reply    {"type": "response", "args": TEXT}

A LangChain agent's `HumanInTheLoopMiddleware` interrupt (a `HITLRequest`: `action_requests`
and `review_configs` with `allowed_decisions`) is asked the same way, one question per
action, and resumed with `{"decisions": [...]}`: approve, edit (`edited_action`), deny as
reject (the reason as its `message`), a written reply as respond where allowed, else as a
reject whose message the model reads. Its `per_call` mode's `tool_approval` interrupt is
answered with one such decision, allowed by the interrupt's `response_schema`.

The request's action travels with the question as an `Action` (agent "langgraph", tool the
action's name, input its args), so the dashboard shows it and opens its args for an edit.
Any other value is a plain question (a string; `{"question": ..., "choices": [...]}`; else
the value as JSON) whose answer's text is resumed as it is. An answer the request does not
allow (a reply where `allow_respond` is off, edited args that are no JSON object) is never
resumed: the question is asked again, saying why. Several pending interrupts are asked one
after the other and resumed together, by interrupt id.

Fail safe: the graph resumes only with answers a person gave. An abort in taskdeck stops
the run (an async graph is cancelled mid-node; a sync one stops after the node that runs)
and raises `RunAborted`. A question nobody answered in time, or a daemon that went away,
raises and leaves the graph at its interrupt, checkpointed: running it again with input
None asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

try:
    from langgraph.types import Command, Interrupt
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the LangGraph adapter needs LangGraph: pip install 'taskdeck[langgraph]'"
    ) from exc

from core.client import Changes, Client, ExternalTask
from core.errors import InvalidState, NotPending, TaskdeckError
from core.model import (
    DEFAULT_CHOICES,
    EDIT,
    MAX_NAME,
    MAX_SUMMARY,
    MAX_TEXT,
    Action,
    EndReason,
    Prompt,
    Question,
    Task,
    summarize,
)

AGENT = "langgraph"
"""The agent name of the run's task and of every action it asks about."""

APPROVE, DENY = DEFAULT_CHOICES

REPLY = "reply"
"""The one choice of a request that takes nothing but a written reply (a prompt lists at
least one choice); picking it asks again, for the text."""

DEFAULT_LEASE = 30.0
"""Seconds the run's task lives without a heartbeat: past it, a run whose process died
fails as lost. Generous, because an async node that blocks the event loop holds up the
heartbeats too."""

STREAM_MODES = ["updates", "values"]
"""Updates name each node as it ends (the progress) and carry the interrupts; the last
values are the run's output, as `invoke` returns it."""


class RunStopped(Exception):
    """The run's task ended in taskdeck (aborted, lost) before the graph did: not resumed."""


class RunAborted(RunStopped):
    """Somebody aborted the run's task in taskdeck: the graph was stopped, not resumed."""


class BadInterrupt(ValueError):
    """An interrupt no answer could resume: an Agent Inbox request that allows none."""


class NotTaken(Exception):
    """An answer the question cannot take; it is asked again, saying why."""


# ------------------------------------------------------------------ the mapping


@dataclass(frozen=True)
class InboxRequest:
    """An action request (Agent Inbox's, or one of a LangChain `HITLRequest`): the action,
    and which answers it allows."""

    action: str
    args: dict[str, Any]
    description: str | None
    accept: bool
    edit: bool
    respond: bool
    """A written reply is taken (Agent Inbox: response; LangChain: respond, else reject)."""
    ignore: bool
    decisions: tuple[str, ...] = ()
    """A LangChain request's allowed decisions, as given; empty for Agent Inbox's."""
    args_key: str = "args"
    """Where a LangChain edit puts the edited args (older releases said "arguments")."""

    @property
    def choices(self) -> list[str]:
        """The prompt's choices: the allowed answers a person picks (a reply is typed)."""
        listed = [choice for choice, allowed in
                  ((APPROVE, self.accept), (EDIT, self.edit), (DENY, self.ignore)) if allowed]
        return listed or [REPLY]


def inbox_request(value: Any) -> InboxRequest | None:
    """The Agent Inbox request `value` is, or None when it is something else.

    Raises:
        BadInterrupt: it is a request whose config allows no answer at all.
    """
    if not isinstance(value, dict):
        return None
    request = value.get("action_request")
    if not isinstance(request, dict) or not isinstance(request.get("action"), str):
        return None
    args = request.get("args") if request.get("args") is not None else {}
    if not isinstance(args, dict):
        return None
    config = value.get("config") if isinstance(value.get("config"), dict) else {}
    allowed = {name: config.get(f"allow_{name}") is True
               for name in ("accept", "edit", "respond", "ignore")}
    if not any(allowed.values()):
        raise BadInterrupt(
            f"the interrupt asking for {request['action'][:MAX_NAME]!r} allows no answer "
            "(allow_accept, allow_edit, allow_respond and allow_ignore are all off)"
        )
    description = value.get("description")
    return InboxRequest(action=request["action"], args=_json_like(args),
                        description=description if isinstance(description, str) else None,
                        **allowed)


def tool_approval(value: Any, schema: Any) -> InboxRequest | None:
    """The request of a LangChain `ToolApprovalRequest` (`HumanInTheLoopMiddleware` with
    `interrupt_mode="per_call"`: one tool call, answered with one decision), its allowed
    decisions read from the interrupt's `response_schema`; None for anything else.

    Raises:
        BadInterrupt: the schema names no decision this adapter can give.
    """
    if not (isinstance(value, dict) and value.get("type") == "tool_approval"
            and isinstance(value.get("name"), str) and isinstance(value.get("args"), dict)):
        return None
    allowed = _schema_decisions(schema)
    return _decided_request(value["name"], value["args"], "args", allowed,
                            value.get("description"))


def _schema_decisions(schema: Any) -> tuple[str, ...]:
    """The decision types a response schema admits: its discriminator's, or its one `type`."""
    if not isinstance(schema, dict):
        return ()
    discriminator = schema.get("discriminator")
    mapping = discriminator.get("mapping") if isinstance(discriminator, dict) else None
    if isinstance(mapping, dict):
        return tuple(name for name in mapping if isinstance(name, str))
    properties = schema.get("properties")
    kind = properties.get("type") if isinstance(properties, dict) else None
    const = kind.get("const") if isinstance(kind, dict) else None
    return (const,) if isinstance(const, str) else ()


def _decided_request(action: str, args: dict[str, Any], args_key: str,
                     allowed: tuple[str, ...], description: Any) -> InboxRequest:
    """A LangChain action to review, offered what its allowed decisions permit.

    Raises:
        BadInterrupt: none of approve, edit, reject, respond is allowed.
    """
    if not {"approve", "edit", "reject", "respond"} & set(allowed):
        raise BadInterrupt(f"the {action[:MAX_NAME]!r} action allows no decision taskdeck "
                           f"can give (allowed: {', '.join(allowed) or 'none'})")
    return InboxRequest(
        action=action, args=_json_like(args),
        description=description if isinstance(description, str) else None,
        accept="approve" in allowed, edit="edit" in allowed, ignore="reject" in allowed,
        respond="respond" in allowed or "reject" in allowed,
        decisions=allowed, args_key=args_key)


def hitl_requests(value: Any) -> list[InboxRequest] | None:
    """The action requests of a LangChain `HITLRequest` (`HumanInTheLoopMiddleware`'s
    interrupt: `action_requests`, each allowed the `review_configs` entry of its name), or
    None when `value` is something else.

    Raises:
        BadInterrupt: an action no review config allows any decision.
    """
    if not isinstance(value, dict):
        return None
    actions, configs = value.get("action_requests"), value.get("review_configs")
    if not (isinstance(actions, list) and actions and isinstance(configs, list)):
        return None
    requests = []
    for action in actions:
        if not isinstance(action, dict) or not isinstance(action.get("name"), str):
            return None
        key = "args" if "args" in action else "arguments"
        args = action.get(key) if action.get(key) is not None else {}
        if not isinstance(args, dict):
            return None
        config = next((c for c in configs if isinstance(c, dict)
                       and c.get("action_name") == action["name"]), {})
        allowed = config.get("allowed_decisions")
        allowed = tuple(d for d in allowed if isinstance(d, str)) if isinstance(allowed, list) else ()
        description = action.get("description") or config.get("description")
        requests.append(_decided_request(action["name"], args, key, allowed, description))
    return requests


@dataclass(frozen=True)
class Asking:
    """One taskdeck question, and the request whose answers it offers (None: a plain one)."""

    question: Question
    request: InboxRequest | None = None


@dataclass(frozen=True)
class Interruption:
    """A pending interrupt as the questions asked for it, in order."""

    id: str
    asks: tuple[Asking, ...]
    shape: str = "one"
    """How the answers resume it: "one" (the answer), "list" (Agent Inbox's list of
    requests: the list of responses) or "decisions" (LangChain: {"decisions": [...]})."""

    def resume_value(self, answers: list[Any]) -> Any:
        """What the interrupt resumes with, from the answers to `asks`."""
        if self.shape == "decisions":
            return {"decisions": answers}
        return answers if self.shape == "list" else answers[0]


def interruption(
    interrupt_id: str,
    value: Any,
    *,
    schema: Any = None,
    session: str | None = None,
    timeout: float | None = None,
) -> Interruption:
    """The questions an interrupt's value asks.

    Args:
        schema: The interrupt's `response_schema` (JSON schema), where it declares one.
        session: The graph's thread id, kept with each action.
        timeout: Seconds each question waits for a person (None: no limit).

    Raises:
        BadInterrupt: a request in it allows no answer.
    """
    decided = hitl_requests(value)
    if decided is not None:
        asks = tuple(_inbox_asking(r, session, timeout) for r in decided)
        return Interruption(interrupt_id, asks, shape="decisions")
    approval = tool_approval(value, schema)
    if approval is not None:
        return Interruption(interrupt_id, (_inbox_asking(approval, session, timeout),))
    if isinstance(value, list) and value:
        requests = [inbox_request(item) for item in value]
        if all(request is not None for request in requests):
            asks = tuple(_inbox_asking(r, session, timeout) for r in requests if r is not None)
            return Interruption(interrupt_id, asks, shape="list")
    request = inbox_request(value)
    if request is not None:
        return Interruption(interrupt_id, (_inbox_asking(request, session, timeout),))
    return Interruption(interrupt_id, (Asking(_plain_question(value, timeout)),))


def _inbox_asking(request: InboxRequest, session: str | None, timeout: float | None) -> Asking:
    what = request.description or f"The graph asks to run {request.action}."
    action = Action(agent=AGENT, tool=request.action[:MAX_NAME] or "action", input=request.args,
                    session=session[:MAX_NAME] if session else None,
                    summary=_summary(request))
    answers = _answers_line(request)  # kept whole: a long description is what gets cut
    text = _clip(what.strip(), MAX_TEXT - len(answers) - 1) + (f"\n{answers}" if answers else "")
    return Asking(Question(text=text, choices=request.choices, timeout=timeout, action=action),
                  request)


def _answers_line(request: InboxRequest) -> str:
    """A line on written replies when the request does not take one the usual way: the
    prompt's keys always offer a reply, and its lines are few (an approval waits until
    every one was on screen)."""
    if not request.respond:
        return "(a written reply is not taken here)"
    if not (request.accept or request.edit or request.ignore):
        return "(answer with a written reply: r)"
    return ""


def _summary(request: InboxRequest) -> str:
    """The tree's line: a command, path or URL in the args, else the action and its args."""
    derived = summarize(request.action, request.args)
    if derived != f"{request.action}(...)"[:MAX_SUMMARY]:
        return derived
    line = f"{request.action} {_json(request.args)}"
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def _plain_question(value: Any, timeout: float | None) -> Question:
    choices = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and isinstance(value.get("question"), str):
        text = value["question"]
        listed = value.get("choices")
        if isinstance(listed, list) and listed and all(isinstance(c, str) for c in listed):
            choices = listed
    else:
        text = _json(value, indent=2)
    return Question(text=_clip(text.strip()) or "(the graph interrupted with an empty value)",
                    choices=choices, timeout=timeout)


def read_answer(asking: Asking, prompt: Prompt) -> Any:
    """The value the graph resumes with for an answered question.

    Raises:
        NotTaken: an answer the request does not allow; ask again, saying why.
    """
    answer = prompt.answer or ""
    request = asking.request
    if request is None:
        return answer
    if request.decisions:
        return _decision(request, answer, prompt.reason)
    if answer in request.choices:
        if answer == APPROVE:
            return {"type": "accept", "args": None}
        if answer == EDIT:
            edited = _edited(request, prompt.reason)
            return {"type": "edit", "args": {"action": request.action, "args": edited}}
        if answer == DENY:
            return {"type": "ignore", "args": prompt.reason}
        raise NotTaken("this question takes a written reply: r, then the text")
    if request.respond:
        return {"type": "response", "args": answer}
    raise NotTaken(f"a written reply is not taken here; pick {' / '.join(request.choices)}")


def _decision(request: InboxRequest, answer: str, reason: str | None) -> dict[str, Any]:
    """A LangChain decision: approve, edit, reject (with the reason as its message), or a
    written reply as respond (where allowed, else as a rejection the model reads)."""
    if answer in request.choices:
        if answer == APPROVE:
            return {"type": "approve"}
        if answer == EDIT:
            edited = _edited(request, reason)
            return {"type": "edit", "edited_action": {"name": request.action,
                                                      request.args_key: edited}}
        if answer == DENY:
            return {"type": "reject", **({"message": reason} if reason else {})}
        raise NotTaken("this question takes a written reply: r, then the text")
    if "respond" in request.decisions:
        return {"type": "respond", "message": answer}
    if "reject" in request.decisions:
        return {"type": "reject", "message": answer}
    raise NotTaken(f"a written reply is not taken here; pick {' / '.join(request.choices)}")


def _edited(request: InboxRequest, reason: str | None) -> dict[str, Any]:
    """The edited args an edit's reason holds (none given: the args as they were)."""
    if reason is None or not reason.strip():
        return request.args
    try:
        edited = json.loads(reason)
    except ValueError as exc:
        raise NotTaken(f"the edited args are not JSON ({exc})") from None
    if not isinstance(edited, dict):
        raise NotTaken("the edited args must be a JSON object, {...}")
    return edited


def asked_again(asking: Asking, why: str) -> Question:
    """The question asked once more, opening with why the last answer was not taken."""
    question = asking.question
    return msgspec.structs.replace(question, text=_clip(f"Not taken: {why}.\n{question.text}"))


def _json(value: Any, indent: int = 0) -> str:
    encoded = msgspec.json.encode(value, enc_hook=repr)
    return msgspec.json.format(encoded, indent=indent).decode()


def _json_like(value: dict[str, Any]) -> dict[str, Any]:
    """The args as JSON data (anything else by its repr): what a person reads and edits."""
    return msgspec.json.decode(msgspec.json.encode(value, enc_hook=repr))


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------ the runner

Stream = Callable[[Any, Any, dict[str, Any]], AsyncIterator[tuple[str, Any]]]
"""How one step of the graph is streamed: (graph, input or Command, config) -> chunks."""


async def arun_graph(graph: Any, input: Any, config: dict[str, Any], **options: Any) -> Any:
    """Run a compiled graph to its end as a taskdeck task; returns what `ainvoke` would.

    `options` are `GraphRun`'s keywords (description, key, parent_id, question_timeout,
    lease, runtime_dir); `GraphRun.arun` says what is raised.
    """
    return await GraphRun(graph, config, **options).arun(input)


def run_graph(graph: Any, input: Any, config: dict[str, Any], **options: Any) -> Any:
    """Blocking twin of `arun_graph`, for sync graphs and checkpointers; see `GraphRun.run`."""
    return GraphRun(graph, config, **options).run(input)


class GraphRun:
    """One run of a compiled graph as a taskdeck task: step, ask, resume, until it ends.

    Args:
        graph: A compiled graph with a checkpointer.
        config: Its config; `configurable.thread_id` names the thread.
        description: The task's line in the tree (default: the graph and thread).
        key: Finds the run's task again while it lives (default "langgraph:THREAD_ID").
        parent_id: Show the run under this task.
        question_timeout: Seconds each question waits for a person (None: no limit).
        lease: Seconds the task lives without a heartbeat (see `DEFAULT_LEASE`).
        runtime_dir: Where the daemon's connection file is (default: ours).

    Raises:
        ValueError: no checkpointer or no thread id.
    """

    def __init__(
        self,
        graph: Any,
        config: dict[str, Any],
        *,
        description: str | None = None,
        key: str | None = None,
        parent_id: int | None = None,
        question_timeout: float | None = None,
        lease: float = DEFAULT_LEASE,
        runtime_dir: Path | str | None = None,
    ) -> None:
        thread = (config or {}).get("configurable", {}).get("thread_id")
        if thread is None or str(thread) == "":
            raise ValueError("the config needs {'configurable': {'thread_id': ...}}: "
                             "interrupts are kept per thread")
        if getattr(graph, "checkpointer", None) is None:
            raise ValueError("the graph needs a checkpointer (compile(checkpointer=...)) "
                             "to pause at an interrupt and resume")
        self.graph = graph
        self.config = config
        self.thread = str(thread)
        name = getattr(graph, "name", None) or "LangGraph"
        self.description = description or f"{name} run, thread {self.thread}"
        self.key = key or f"{AGENT}:{self.thread}"
        self.parent_id = parent_id
        self.question_timeout = question_timeout
        self.lease = lease
        self.runtime_dir = runtime_dir
        self.ended = asyncio.Event()
        """Set once the run's task has ended in taskdeck (seen by the client's mirror)."""
        self.ended_as: Task | None = None

    async def arun(self, input: Any) -> Any:
        """Run the graph (`astream`) until it ends; returns its output, as `ainvoke` would.

        Each interrupt is asked in taskdeck and the graph resumed with the answers. The
        task finishes with the output, or fails with the exception that ended the run.

        Args:
            input: The graph's input; None resumes the thread at its pending interrupts.

        Raises:
            RunAborted: the task was aborted in taskdeck; the graph was not resumed.
            RunStopped: the task ended otherwise (lost) before the graph did.
            PromptTimedOut: nobody answered a question in time; the graph waits at it.
            BadInterrupt: an interrupt allows no answer.
            Unavailable: no daemon.
        """
        return await self._drive(input, _astream)

    def run(self, input: Any) -> Any:
        """Blocking `arun`, for sync graphs and checkpointers (the graph's own `stream`).

        The stream runs in a worker thread while an event loop of this call's own keeps
        the lease and waits for answers, so call it where no event loop runs (inside one,
        await `arun`). After an abort, the node that runs ends first.

        Raises:
            RuntimeError: called inside a running event loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop runs here: the usual case
            return asyncio.run(self._drive(input, _threaded_stream))
        raise RuntimeError("run_graph blocks, and an event loop runs here: "
                           "await arun_graph(...) instead")

    async def _drive(self, input: Any, stream: Stream) -> Any:
        self.ended, self.ended_as = asyncio.Event(), None  # afresh for each run
        async with Client(self.runtime_dir, client_name=AGENT) as deck:
            task = await deck.open_task(_clip(self.description), agent=AGENT, key=self.key,
                                        parent_id=self.parent_id, lease=self.lease)
            await deck.start_mirror(lambda changes: self._watch(deck, task.id, changes))
            async with task:
                try:
                    return await self._until_done(task, stream, input)
                except asyncio.CancelledError:  # Ctrl-C, or the caller gave up: say so now
                    with contextlib.suppress(TaskdeckError):  # rather than when the lease lapses
                        await task.fail("the run was cancelled in its own process")
                    raise

    async def _until_done(self, task: ExternalTask, stream: Stream, input: Any) -> Any:
        """Step, ask and resume until the graph ends: its output."""
        command = input
        while True:
            output, pending = await self._unless_ended(self._step(task, stream, command))
            if not pending:
                await task.finish(result_of(output))
                return output
            command = Command(resume=await self._answers(task, pending))

    def _watch(self, deck: Client, task_id: int, changes: Changes) -> None:
        if task_id in changes.task_ids or changes.resynced:
            seen = deck.mirror.tasks.get(task_id)
            if seen is not None and seen.status.is_ended:
                self.ended_as = seen
                self.ended.set()

    async def _step(
        self, task: ExternalTask, stream: Stream, command: Any
    ) -> tuple[Any, list[Interrupt]]:
        """Stream the graph until it ends or interrupts: (last values, pending interrupts)."""
        output: Any = None
        pending: dict[str, Interrupt] = {}
        async with contextlib.aclosing(stream(self.graph, command, self.config)) as chunks:
            async for mode, chunk in chunks:
                if mode == "values":
                    output = chunk
                    continue
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        pending.update((interrupt.id, interrupt) for interrupt in update)
                        continue
                    await task.progress(_clip(f"ran {node}"))
                    prompt, completion = usage_of(update)
                    if prompt or completion:
                        await task.add_tokens(prompt, completion)
        return output, list(pending.values())

    async def _unless_ended(self, step: Any) -> Any:
        """Await a step of the graph, cancelled as soon as the run's task ends."""
        work = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if self.ended.is_set():
            raise _stopped(self.ended_as)
        return work.result()

    async def _answers(self, task: ExternalTask, pending: list[Interrupt]) -> dict[str, Any]:
        """Ask every pending interrupt's questions in turn: {interrupt id: resume value}."""
        resume: dict[str, Any] = {}
        for interrupt in pending:
            asked = interruption(interrupt.id, interrupt.value, session=self.thread,
                                 schema=getattr(interrupt, "response_schema", None),
                                 timeout=self.question_timeout)
            answers = [await self._answer(task, asking) for asking in asked.asks]
            resume[interrupt.id] = asked.resume_value(answers)
        return resume

    async def _answer(self, task: ExternalTask, asking: Asking) -> Any:
        question = asking.question
        while True:
            try:
                prompt = await task.ask(question)
            except (InvalidState, NotPending):
                if task.task.status.is_ended:
                    raise _stopped(task.task) from None
                raise
            try:
                return read_answer(asking, prompt)
            except NotTaken as why:
                question = asked_again(asking, str(why))


def result_of(output: Any) -> str:
    """The task's result: the last message's text for a chat state (`messages`), else the
    output as JSON (anything else by its repr), cut to what a line of text holds."""
    messages = output.get("messages") if isinstance(output, dict) else None
    if isinstance(messages, list) and messages:
        content = getattr(messages[-1], "content", None)
        if isinstance(content, str) and content.strip():
            return _clip(content.strip())
    return _clip(_json(output))


def usage_of(update: Any) -> tuple[int, int]:
    """Prompt and completion tokens of the model messages a node returned (LangChain's
    `usage_metadata` on each message), so the tree counts what a graph's model calls cost."""
    prompt = completion = 0
    values = update.values() if isinstance(update, dict) else ()
    for value in values:
        for item in value if isinstance(value, list) else (value,):
            usage = getattr(item, "usage_metadata", None)
            if isinstance(usage, dict):
                prompt += _count(usage.get("input_tokens"))
                completion += _count(usage.get("output_tokens"))
    return prompt, completion


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _stopped(task: Task | None) -> RunStopped:
    if task is None or task.end_reason is EndReason.ABORTED:
        return RunAborted(f"the run was aborted in taskdeck{_of(task)}; the graph was not resumed")
    why = task.end_reason.value if task.end_reason else task.status.value
    return RunStopped(f"the run's task{_of(task)} ended ({why}: {task.error or ''}) "
                      "before the graph did")


def _of(task: Task | None) -> str:
    return f" (task {task.id})" if task is not None else ""


def _astream(graph: Any, command: Any, config: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
    return graph.astream(command, config, stream_mode=STREAM_MODES)


_DONE = object()


async def _threaded_stream(
    graph: Any, command: Any, config: dict[str, Any]
) -> AsyncIterator[tuple[str, Any]]:
    """A sync graph's `stream` in a worker thread, its chunks handed to the event loop.

    Once the consumer leaves (an abort), the worker stops taking chunks, which ends the
    stream at the next step: the node then running finishes, no later one starts, and
    only then does the consumer go on.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[Any] = asyncio.Queue()
    gone = threading.Event()

    def hand(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
            loop.call_soon_threadsafe(chunks.put_nowait, item)

    def pump() -> None:
        try:
            with contextlib.closing(graph.stream(command, config, stream_mode=STREAM_MODES)) as steps:
                for chunk in steps:
                    if gone.is_set():
                        return
                    hand(chunk)
        except BaseException as exc:  # noqa: BLE001 - handed over, raised on the loop's side
            hand(_Failed(exc))
        else:
            hand(_DONE)

    worker = threading.Thread(target=pump, name="taskdeck-langgraph", daemon=True)
    worker.start()
    try:
        while (item := await chunks.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        gone.set()
        await asyncio.to_thread(worker.join)


@dataclass(frozen=True)
class _Failed:
    error: BaseException
