"""What a fake LLM server answers: a queue of scripted replies and injected failures per
test, plus the record of what the SDK sent. Each fake renders these in its wire protocol."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http import Exchange, HTTPServer, Request


@dataclass
class Reply:
    """One model answer. `chunks` are the stream deltas (default: the text word by word);
    `delay` holds the response back that long before anything is sent (timeouts)."""

    text: str = "Alice is a nurse."
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int = 11
    output_tokens: int = 7
    finish_reason: str | None = None  # None: the protocol's normal stop for this reply
    chunks: list[str] | None = None
    delay: float = 0.0

    def deltas(self) -> list[str]:
        return self.chunks if self.chunks is not None else re.findall(r"\S+\s*", self.text)


@dataclass
class Failure:
    """An HTTP error response, e.g. 500, 429 (with `headers={"retry-after": "0"}`), 400."""

    status: int
    message: str = "injected failure"
    headers: dict[str, str] = field(default_factory=dict)


Scripted = Reply | Failure


class ScriptedServer:
    """Answers each request with the next scripted item (the default Reply once the queue is
    empty). `chunk_delay` spaces stream events; `hung_up` is set when a client disconnects
    mid-stream, `streams_hung_up` counts those streams, `streams_completed` the streams sent
    to the end."""

    path = ""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.script: deque[Scripted] = deque()
        self.default = Reply()
        self.chunk_delay = chunk_delay
        self.requests: list[Request] = []
        self.hung_up = asyncio.Event()
        self.streams_completed = 0
        self.streams_hung_up = 0
        self.http = HTTPServer(self._handle)
        self.url = ""

    def push(self, *items: Scripted) -> None:
        self.script.extend(items)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    async def __aenter__(self) -> ScriptedServer:
        port = await self.http.start()
        self.url = self.base_url(port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.stop()

    async def _handle(self, exchange: Exchange) -> None:
        request = exchange.request
        self.requests.append(request)
        item = self.script.popleft() if self.script else self.default
        if request.path.split("?")[0] != self.path:
            await exchange.send_json(404, self.error_body(404, f"no route {request.path}"))
        elif isinstance(item, Failure):
            await exchange.send_json(item.status, self.error_body(item.status, item.message),
                                     item.headers)
        else:
            await asyncio.sleep(item.delay)
            await self._answer(exchange, item)

    async def _answer(self, exchange: Exchange, reply: Reply) -> None:
        body = exchange.request.body
        if not body.get("stream"):
            await exchange.send_json(200, self.message(body, reply))
            return
        if await exchange.stream(self.events(body, reply), self.chunk_delay):
            self.streams_completed += 1
        else:
            self.streams_hung_up += 1
            self.hung_up.set()

    # The wire protocol, per fake.
    def base_url(self, port: int) -> str:
        raise NotImplementedError

    def message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, body: dict[str, Any], reply: Reply) -> list[bytes]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError


def pieces(text: str, size: int = 8) -> list[str]:
    """`text` cut into fixed-size pieces, as providers stream tool-call JSON."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
