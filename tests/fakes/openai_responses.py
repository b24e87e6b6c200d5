"""A fake OpenAI Responses API on loopback: a scripted model for the real Codex binary.

Codex, pointed here by a model provider with `base_url = URL/v1` and `wire_api =
"responses"`, sends `POST /v1/responses` with `stream: true` (and may `GET /v1/models`);
this server answers each model request with the next turn of a script, as server-sent
events in the order the real API uses (`response.created`, each output item added, its
deltas and done, `response.completed` with usage). Every request is recorded, so a test
can assert what the model was told (a command's output, a denial's reason).

    with FakeResponses([shell("touch ran", escalate="needs it"), say("done")]) as model:
        model.write_config(codex_home, project)
        subprocess.run([codex, "exec", ...], env={**os.environ, **model.env(codex_home)})
        assert "ran" in model.outputs()[0]

A turn is consumed only by a request that offers tools (the agent's own loop); other
requests get a short text and leave the script alone. When the script runs out the model
says `SCRIPT_ENDED`, and `overrun` counts such requests.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.loopback import LoopbackServer, RecordedRequest

MODEL = "fake-model"
KEY_VARIABLE = "TASKDECK_FAKE_OPENAI_KEY"
"""The variable Codex reads the provider's key from (it must be set; any value works)."""
SCRIPT_ENDED = "(the fake model's script has ended)"
SIDE_ANSWER = "ok"


@dataclass(frozen=True)
class Turn:
    """One model answer: a text message, or one function call with its arguments."""

    text: str = ""
    call: str = ""
    """The function's name ("exec_command"); empty for a text answer."""
    arguments: dict[str, Any] | None = None


def say(words: str) -> Turn:
    """A turn that says `words` and ends."""
    return Turn(text=words)


def shell(command: str, *, escalate: str = "", workdir: str | None = None) -> Turn:
    """A turn that runs a shell command with Codex's `exec_command` tool.

    With `escalate` (the justification), the call asks to leave the sandbox: that is the
    call that needs a person's approval.
    """
    arguments: dict[str, Any] = {"cmd": command}
    if workdir is not None:
        arguments["workdir"] = workdir
    if escalate:
        arguments |= {"sandbox_permissions": "require_escalated", "justification": escalate}
    return Turn(call="exec_command", arguments=arguments)


@dataclass(frozen=True)
class Request(RecordedRequest):
    """One request the fake received."""

    @property
    def is_model_call(self) -> bool:
        return self.method == "POST" and self.path.split("?")[0].endswith("/responses")

    def outputs(self) -> list[dict[str, Any]]:
        """The `function_call_output` items of this request's input."""
        items = (self.body or {}).get("input", [])
        return [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]

    def text(self) -> str:
        return json.dumps(self.body or {})


def output_text(item: dict[str, Any]) -> str:
    """The text of a `function_call_output` item, a string or a list of content parts."""
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return str(output.get("content", ""))
    return "".join(p.get("text", "") for p in output or [] if isinstance(p, dict))


class FakeResponses(LoopbackServer):
    """The fake API in a thread; a context manager (start on enter, stop on exit)."""

    def __init__(self, script: Sequence[Turn] = ()) -> None:
        super().__init__(_handler(self), "fake-responses")
        self.script: list[Turn] = list(script)
        self.requests: list[Request] = []
        self.overrun = 0
        self.served = 0
        """Scripted turns answered so far."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def config(self, project: Path, *, approval: str = "on-request",
               sandbox: str = "read-only") -> str:
        """The config.toml lines that run Codex offline against this fake, in `project`."""
        return "\n".join([
            f'model = "{MODEL}"',
            'model_provider = "fake"',
            f'approval_policy = "{approval}"',
            f'sandbox_mode = "{sandbox}"',
            "",
            "[model_providers.fake]",
            'name = "fake"',
            f'base_url = "{self.url}/v1"',
            'wire_api = "responses"',
            f'env_key = "{KEY_VARIABLE}"',
            "request_max_retries = 0",
            "stream_max_retries = 0",
            "",
            f'[projects."{project}"]',
            'trust_level = "trusted"',
            "",
        ])

    def env(self, codex_home: Path) -> dict[str, str]:
        """The environment that runs Codex offline against this fake."""
        return {"CODEX_HOME": str(codex_home), KEY_VARIABLE: "test", "NO_COLOR": "1",
                "RUST_LOG": "error"}

    # -------------------------------------------------------------- what was asked

    def model_calls(self) -> list[Request]:
        """The scripted model requests (those that offer tools), in order."""
        with self._lock:
            return [r for r in self.requests if r.is_model_call and r.offers_tools]

    def outputs(self) -> list[str]:
        """The text of every function call output the model received, in order, each once."""
        seen: dict[str, str] = {}
        for request in self.model_calls():
            for item in request.outputs():
                seen.setdefault(str(item.get("call_id")), output_text(item))
        return list(seen.values())

    # -------------------------------------------------------------- the answers

    def _next(self, request: Request) -> Turn:
        with self._lock:
            self.requests.append(request)
            if not (request.is_model_call and request.offers_tools):
                return say(SIDE_ANSWER)
            if self.served < len(self.script):
                turn = self.script[self.served]
                self.served += 1
                return turn
            self.overrun += 1
            return say(SCRIPT_ENDED)

    def events(self, turn: Turn) -> Iterator[dict[str, Any]]:
        """The server-sent events of one answer, in the order the real API sends them."""
        n = next(self._ids)
        response = {"id": f"resp_{n}", "object": "response", "model": MODEL, "output": []}
        yield {"type": "response.created", "response": {**response, "status": "in_progress"}}
        if turn.call:
            arguments = json.dumps(turn.arguments or {})
            item = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}",
                    "name": turn.call, "arguments": "", "status": "in_progress"}
            yield {"type": "response.output_item.added", "output_index": 0, "item": item}
            yield {"type": "response.function_call_arguments.delta", "item_id": item["id"],
                   "output_index": 0, "delta": arguments}
            yield {"type": "response.function_call_arguments.done", "item_id": item["id"],
                   "output_index": 0, "arguments": arguments}
            done = {**item, "arguments": arguments, "status": "completed"}
        else:
            item = {"type": "message", "id": f"msg_{n}", "role": "assistant",
                    "status": "in_progress", "content": []}
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            yield {"type": "response.output_item.added", "output_index": 0, "item": item}
            yield {"type": "response.content_part.added", **where, "part": part}
            yield {"type": "response.output_text.delta", **where, "delta": turn.text}
            yield {"type": "response.output_text.done", **where, "text": turn.text}
            yield {"type": "response.content_part.done", **where,
                   "part": {**part, "text": turn.text}}
            done = {**item, "status": "completed", "content": [{**part, "text": turn.text}]}
        yield {"type": "response.output_item.done", "output_index": 0, "item": done}
        usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 15}
        yield {"type": "response.completed",
               "response": {**response, "status": "completed", "output": [done], "usage": usage}}


def _handler(fake: FakeResponses) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _body(self) -> dict[str, Any] | None:
            size = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(size) if size else b""
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                return None
            return data if isinstance(data, dict) else None

        def _json(self, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            fake._next(Request("GET", self.path, None))
            self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}],
                        "models": []})

        def do_POST(self) -> None:  # noqa: N802
            request = Request("POST", self.path, self._body())
            turn = fake._next(request)
            if not request.is_model_call:
                self._json({})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for event in fake.events(turn):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True

    return Handler
