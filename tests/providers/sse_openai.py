"""A local HTTP server speaking the OpenAI chat-completions wire protocol, streaming included
(SSE `data: {...}` chunks, usage in the last chunk, `data: [DONE]`), for tests of the real
SDK: scripted words, a delay between chunks, and a record of client disconnects."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ScriptedOpenAI:
    words: list[str] = field(default_factory=lambda: ["Alice ", "is ", "a ", "nurse."])
    json_answer: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    completed: threading.Event = field(default_factory=threading.Event)
    # How many streams ended each way (the events above only say "at least one").
    tally: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str) -> None:
        with self.lock:
            self.tally[outcome] += 1


def _handler(state: ScriptedOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            if body.get("stream"):
                self._stream()
            else:
                self._json(body)

        def _json(self, body: dict[str, Any]) -> None:
            content = json.dumps(state.json_answer) if "response_format" in body \
                else "".join(state.words)
            payload = json.dumps({
                "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _chunk(self, delta: dict[str, Any], finish: str | None = None,
                   usage: dict[str, int] | None = None) -> bytes:
            choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
            data = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                    "model": "m", "choices": choices, "usage": usage}
            return f"data: {json.dumps(data)}\n\n".encode()

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [self._chunk({"role": "assistant", "content": ""})]
            events += [self._chunk({"content": w}) for w in state.words]
            events += [self._chunk({}, "stop"),
                       self._chunk({}, usage={"prompt_tokens": 11, "completion_tokens": 7,
                                              "total_tokens": 18}),
                       b"data: [DONE]\n\n"]
            try:
                for event in events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                    time.sleep(state.delay)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                state.completed.set()
                state.count("completed")
            except (BrokenPipeError, ConnectionResetError):
                state.disconnected.set()
                state.count("disconnected")

    return Handler


@contextmanager
def scripted_openai(**kw: Any) -> Iterator[ScriptedOpenAI]:
    state = ScriptedOpenAI(**kw)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
