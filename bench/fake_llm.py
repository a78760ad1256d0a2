"""A local OpenAI-compatible chat-completions server for benchmarks (stdlib, in a thread):
every answer waits a fixed `first_token_delay` after the request arrives, then streams its
words at once (SSE `data: {...}` chunks, usage, `data: [DONE]`) or, unstreamed, returns
them as one JSON answer. The delay stands in for a provider's own time to first token, so
what a client sees beyond it is our overhead. Tools offered in a request are ignored: the
answer never calls one (the dialectic's tool round ends at once, its stream the answer)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass
class FakeLLM:
    first_token_delay: float = 0.05
    words: list[str] = field(default_factory=lambda: ["p0 ", "is ", "learning ", "cello."])
    url: str = ""
    requests: int = 0


def _handler(state: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Small writes go out at once: with Nagle's algorithm, a write following another
        # waits for the client's delayed ACK (~40 ms), which real providers do not add.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests += 1
            # A client that cancelled mid-answer is no error here.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._stream() if body.get("stream") else self._json(body)

        def _json(self, body: dict[str, Any]) -> None:
            time.sleep(state.first_token_delay)
            payload = json.dumps({
                "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": "".join(state.words)}}],
                "usage": USAGE}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send(self, data: dict[str, Any] | None) -> None:
            event = (b"data: [DONE]\n\n" if data is None else
                     f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()

        def _stream(self) -> None:
            # Headers at once, as real providers send them; the first token after the delay.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            self._send({**head, "choices": [{"index": 0, "finish_reason": None,
                                             "delta": {"role": "assistant", "content": ""}}]})
            time.sleep(state.first_token_delay)
            for word in state.words:
                self._send({**head, "choices": [{"index": 0, "finish_reason": None,
                                                 "delta": {"content": word}}]})
            self._send({**head, "choices": [{"index": 0, "finish_reason": "stop",
                                             "delta": {}}]})
            self._send({**head, "choices": [], "usage": USAGE})
            self._send(None)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client dropping a keep-alive connection after a cancel is expected


@contextmanager
def fake_llm(first_token_delay: float) -> Iterator[FakeLLM]:
    state = FakeLLM(first_token_delay)
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
