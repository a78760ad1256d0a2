"""A minimal OpenAI-compatible HTTP server for fault tests (stdlib, runs in a thread):
`/v1/embeddings` (float or base64) and non-streaming `/v1/chat/completions`.

Faults are programmable: `fail_next` answers that many requests with `fail_status`; while `hold`
is clear, requests wait (a worker calling it is stuck mid-task); `requests` counts arrivals.
Chat answers come from `chat(system, user)`; the default extracts one fact per line of the
target participant, so derived conclusions are predictable.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from honcho_grpc.providers.embeddings import FakeEmbedder

_TARGET = re.compile(r"Target participant: (\S+)")
_LINE = re.compile(r"^\S+ \S+ (?P<speaker>[^:]+): (?P<text>.*)$")


def default_chat(system: str, user: str) -> str:
    if '"explicit"' in system:
        target = _TARGET.search(system)
        facts = []
        for line in user.splitlines():
            m = _LINE.match(line)
            if m and target and m["speaker"] == target[1]:
                facts.append({"content": f"{target[1]} said: {m['text']}"})
        return json.dumps({"explicit": facts})
    if '"card"' in system:
        return json.dumps({"card": []})
    if "superseded" in system:
        return json.dumps({"deductive": [], "inductive": [], "contradictions": [],
                           "superseded": []})
    return "A summary."


@dataclass
class FakeOpenAI:
    url: str = ""
    fail_next: int = 0
    fail_status: int = 500
    hold: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    chat: Callable[[str, str], str] = default_chat
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.hold.set()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            self.arrived.set()
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
        self.hold.wait(120)
        if failing:
            return self.fail_status, {"error": {"message": "injected failure",
                                                "type": "server_error"}}
        if path.endswith("/embeddings"):
            return 200, _embeddings(body)
        if path.endswith("/chat/completions"):
            return 200, self._completion(body)
        return 404, {"error": {"message": f"no route {path}"}}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        system = next((str(m["content"]) for m in messages if m["role"] == "system"), "")
        user = "\n".join(str(m["content"]) for m in messages if m["role"] == "user")
        text = self.chat(system, user)
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len((system + user).split()),
                          "completion_tokens": len(text.split()),
                          "total_tokens": len((system + user + text).split())}}


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    embedder = FakeEmbedder(int(body.get("dimensions") or 384))
    data = []
    for i, text in enumerate(texts):
        vec = embedder._vector(str(text)).astype(np.float32)
        value: Any = (base64.b64encode(vec.tobytes()).decode()
                      if body.get("encoding_format") == "base64" else vec.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": body.get("model", "fake"),
            "usage": {"prompt_tokens": 1, "total_tokens": 1}}


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload = state.answer(self.path, json.loads(raw or b"{}"))
            out = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.hold.set()
        server.shutdown()
        server.server_close()
