"""A fake of the Messages API that Claude Code calls, on loopback: it plays a script of shell
commands per prompt (a Bash tool call each, then "done") and keeps every request it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Script:
    """What the fake model does: for a prompt, the commands it runs in turn."""

    def __init__(self, commands: dict[str, list[str]]) -> None:
        self.commands = commands
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool result Claude Code sent back, in order (its text and whether an error)."""
        seen: dict[str, dict[str, Any]] = {}
        with self.lock:
            for request in self.requests:
                for block in _blocks(request.get("messages", [])):
                    if block.get("type") == "tool_result":
                        seen[block["tool_use_id"]] = block
        return list(seen.values())

    def reply(self, request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            self.requests.append(request)
        messages = [m for m in request.get("messages", []) if m.get("role") != "system"]
        prompt = _first_text(messages)
        done = sum(1 for b in _blocks(messages) if b.get("type") == "tool_result")
        script = self.commands.get(prompt, [])
        if request.get("tools") and done < len(script):
            return _tool_use(f"toolu_{len(self.requests)}", "Bash",
                             {"command": script[done], "description": "run it"})
        return _text("done")


def _blocks(messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            yield from (b for b in content if isinstance(b, dict))


def _first_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip()
        for block in content or []:
            if isinstance(block, dict) and block.get("type") == "text" \
                    and not block["text"].lstrip().startswith("<"):
                return block["text"].strip()
    return ""


def _start() -> tuple[str, dict[str, Any]]:
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1}}})


def _end(reason: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": reason, "stop_sequence": None},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def _tool_use(tool_id: str, name: str, tool_input: dict[str, Any]
              ) -> list[tuple[str, dict[str, Any]]]:
    return [
        _start(),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": json.dumps(tool_input)}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *_end("tool_use"),
    ]


def _text(text: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        _start(),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *_end("end_turn"),
    ]


@contextmanager
def serving(script: Script) -> Iterator[str]:
    """Serve the script on a free loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            self.do_HEAD()

        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            try:
                request = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                request = {}
            events = script.reply(request) if self.path.startswith("/v1/messages") else []
            body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                           for name, data in events).encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
