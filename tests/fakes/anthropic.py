"""A fake Anthropic Messages API on loopback: a scripted model for the real Claude Code binary.

Claude Code, pointed here by `ANTHROPIC_BASE_URL`, sends `HEAD /` and then
`POST /v1/messages?beta=true` with `stream: true`; this server answers each model request
with the next turn of a script, as server-sent events in the order the real API uses
(message_start, content blocks, message_delta with the stop reason, message_stop). Every
request is recorded, so a test can assert what the model was told (a denial's reason in a
`tool_result`, a person's reply, a sub-agent's prompt).

    with FakeAnthropic([tool_use("Bash", {"command": "touch ran"}), text("done")]) as model:
        subprocess.run([claude, "-p", "go"], env={**os.environ, **model.env(home)})
        assert model.tool_results()[0]["content"] == "..."

A turn is consumed only by a request that offers tools (the agent's own loop, a sub-agent's
included); side requests without tools (titles, summaries) get a short text and leave the
script alone. When the script runs out the model ends the turn with `SCRIPT_ENDED`, and
`overrun` counts such requests, so a test sees a conversation that went on longer than planned.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.loopback import LoopbackServer, RecordedRequest

MODEL = "claude-fake-1"
SCRIPT_ENDED = "(the fake model's script has ended)"
SIDE_ANSWER = "ok"
"""What a request without tools (a title, a summary) is answered."""


@dataclass(frozen=True)
class Block:
    """One content block of a scripted answer: text, or a tool call."""

    kind: str
    """"text" or "tool_use"."""
    text: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class Turn:
    """One model answer: its blocks in order; it stops for tools when it calls any."""

    blocks: tuple[Block, ...]

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(b.kind == "tool_use" for b in self.blocks) else "end_turn"


_ids = itertools.count(1)


def text(words: str) -> Turn:
    """A turn that says `words` and ends."""
    return Turn((Block("text", text=words),))


def tool_use(name: str, given: dict[str, Any], *, say: str = "", id: str | None = None) -> Turn:
    """A turn that calls one tool (optionally saying something first)."""
    call = Block("tool_use", name=name, input=given, id=id or f"toolu_fake{next(_ids):04d}")
    return Turn(((Block("text", text=say),) if say else ()) + (call,))


def bash(command: str, description: str = "", **options: Any) -> Turn:
    """A turn that runs a shell command with Claude Code's `Bash` tool."""
    return tool_use("Bash", {"command": command, "description": description or command},
                    **options)


def agent(prompt: str, description: str = "a sub-task", subagent_type: str = "general-purpose",
          **options: Any) -> Turn:
    """A turn that starts a sub-agent with Claude Code's `Agent` tool."""
    return tool_use("Agent", {"description": description, "prompt": prompt,
                              "subagent_type": subagent_type}, **options)


@dataclass(frozen=True)
class Request(RecordedRequest):
    """One request the fake received."""

    @property
    def is_model_call(self) -> bool:
        return self.method == "POST" and self.path.split("?")[0] == "/v1/messages"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation, without the `system` entries Claude Code may append."""
        return [m for m in (self.body or {}).get("messages", []) if m.get("role") != "system"]

    def last_user(self) -> list[dict[str, Any]]:
        """The content blocks of the last user turn (a string content becomes one text block)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                return [{"type": "text", "text": content}] if isinstance(content, str) \
                    else list(content or [])
        return []

    def tool_results(self) -> list[dict[str, Any]]:
        """The `tool_result` blocks of the last user turn."""
        return [b for b in self.last_user() if b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    """The text of a `tool_result` block, whether its content is a string or a list of blocks."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


class FakeAnthropic(LoopbackServer):
    """The fake API in a thread; a context manager (start on enter, stop on exit)."""

    def __init__(self, script: Sequence[Turn] = ()) -> None:
        self.script: list[Turn] = list(script)
        self.requests: list[Request] = []
        self.overrun = 0
        self.served = 0
        """Scripted turns answered so far."""
        self._lock = threading.Lock()
        super().__init__(_handler(self), "fake-anthropic")

    def __enter__(self) -> FakeAnthropic:
        super().__enter__()
        return self

    def add(self, *turns: Turn) -> None:
        """Append turns to the script (for a conversation that goes on)."""
        with self._lock:
            self.script.extend(turns)

    def env(self, home: Path) -> dict[str, str]:
        """The environment that runs Claude Code offline against this fake, with `home` as HOME."""
        return {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_AUTH_TOKEN": "test",
            "ANTHROPIC_MODEL": MODEL,
            "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }

    # -------------------------------------------------------------- what was asked

    def model_calls(self) -> list[Request]:
        """The scripted model requests (those that offer tools), in order."""
        with self._lock:
            return [r for r in self.requests if r.is_model_call and r.offers_tools]

    def tool_results(self) -> list[dict[str, Any]]:
        """Every `tool_result` block the model received, in order, each once."""
        seen: dict[str, dict[str, Any]] = {}
        for request in self.model_calls():
            for message in request.messages:
                content = message.get("content")
                if message.get("role") == "user" and isinstance(content, list):
                    for block in content:
                        if block.get("type") == "tool_result":
                            seen.setdefault(block.get("tool_use_id", ""), block)
        return list(seen.values())

    def result_for(self, turn: Turn) -> dict[str, Any] | None:
        """The `tool_result` that answered the (first) tool call of `turn`, if it came back."""
        ids = [b.id for b in turn.blocks if b.kind == "tool_use"]
        return next((r for r in self.tool_results() if r.get("tool_use_id") in ids), None)

    # -------------------------------------------------------------- answering

    def _next(self, request: Request) -> Turn:
        with self._lock:
            self.requests.append(request)
            if not request.offers_tools:
                return text(SIDE_ANSWER)
            if self.served < len(self.script):
                self.served += 1
                return self.script[self.served - 1]
            self.overrun += 1
            return text(SCRIPT_ENDED)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def events(turn: Turn, model: str = MODEL) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of one answer, in the order the real API sends them."""
    yield "message_start", {"type": "message_start", "message": {
        "id": f"msg_fake{next(_ids):04d}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1}}}
    for index, block in enumerate(turn.blocks):
        if block.kind == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": block.text}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "tool_use", "id": block.id,
                                                            "name": block.name, "input": {}}}
            given = json.dumps(block.input)
            half = len(given) // 2  # in two pieces, as the real API streams it
            for piece in (given[:half], given[half:]):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta",
                                                        "partial_json": piece}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": 5}}
    yield "message_stop", {"type": "message_stop"}


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """HTTP/1.0 answers, one per connection: the stream ends when the connection closes."""

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _request(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            return Request(self.command, self.path,
                           body if isinstance(body, dict) else {"value": body},
                           dict(self.headers.items()))

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_HEAD(self) -> None:
            fake._record(Request("HEAD", self.path, None, dict(self.headers.items())))
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            fake._record(self._request())
            self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                          "message": "not in the fake"}})

        def do_POST(self) -> None:
            request = self._request()
            route = request.path.split("?")[0]
            if route == "/v1/messages/count_tokens":
                fake._record(request)
                self._json(200, {"input_tokens": 10})
                return
            if route != "/v1/messages":
                fake._record(request)
                self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                              "message": "not in the fake"}})
                return
            turn = fake._next(request)
            model = (request.body or {}).get("model") or MODEL
            if not (request.body or {}).get("stream"):
                self._json(200, _whole(turn, model))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for name, data in events(turn, model):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    return Handler


def _whole(turn: Turn, model: str) -> dict[str, Any]:
    """A non-streamed answer (Claude Code streams; other clients may not)."""
    content = [{"type": "text", "text": b.text} if b.kind == "text" else
               {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
               for b in turn.blocks]
    return {"id": f"msg_fake{next(_ids):04d}", "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": turn.stop_reason,
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}
