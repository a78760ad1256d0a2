"""What a fake LLM server answers: a queue of scripted replies and injected failures per
test, plus the record of what the SDK sent. Each fake renders these in its wire protocol.

The fakes are shared by the tests and the benchmarks (bench/ imports them from here): this
package needs only the standard library and numpy, never pytest or the rest of tests/. A fake
serves on the caller's event loop (`async with fake`) or, for a caller whose loop blocks or
who has none (worker processes started synchronously, benchmarks), from a thread with a loop
of its own (`with fake.in_thread()`)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from tests.fakes.http import Exchange, HTTPServer, Request

HOLD_LIMIT = 120.0  # seconds a held request waits at most (a test that forgot to release it)


@dataclass
class Reply:
    """One model answer. `chunks` are the stream deltas (default: the text word by word);
    `delay` holds the response back that long before anything is sent (timeouts);
    `first_token_delay` is the model's time to its first token: a JSON answer waits it, a
    stream sends its headers and first event at once and then waits it (benchmarks subtract
    it from what a client sees)."""

    text: str = "Alice is a nurse."
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int = 11
    output_tokens: int = 7
    finish_reason: str | None = None  # None: the protocol's normal stop for this reply
    chunks: list[str] | None = None
    delay: float = 0.0
    first_token_delay: float = 0.0

    def deltas(self) -> list[str]:
        return self.chunks if self.chunks is not None else re.findall(r"\S+\s*", self.text)


@dataclass
class Failure:
    """An HTTP error response, e.g. 500, 429 (with `headers={"retry-after": "0"}`), 400."""

    status: int
    message: str = "injected failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Raw:
    """A reply sent as given, whatever its protocol says (a hostile or broken provider):
    `json` answers a plain call, `events` (whole SSE lines) a stream."""

    json: Any = None
    events: list[bytes] = field(default_factory=list)


Scripted = Reply | Failure | Raw


class ScriptedServer:
    """Answers each request to `path` with the next scripted item; once the queue is empty,
    with `respond(body)` when set, else `default`. `chunk_delay` spaces stream events.

    Faults and probes, on every route: while `hold` is clear, requests wait (a caller stuck
    mid-call); `arrived` is set by each request; `requests` records them all. `hung_up` is
    set when a client disconnects mid-stream (an asyncio event: wait on it only when serving
    on the caller's loop), `streams_hung_up` counts those streams, `streams_completed` the
    streams sent to the end."""

    path = ""

    def __init__(self, chunk_delay: float = 0.0) -> None:
        self.script: deque[Scripted] = deque()
        self.default = Reply()
        self.respond: Callable[[dict[str, Any]], Reply] | None = None
        self.chunk_delay = chunk_delay
        self.requests: list[Request] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
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

    async def __aenter__(self) -> Self:
        port = await self.http.start()
        self.url = self.base_url(port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hold.set()
        await self.http.stop()

    @contextmanager
    def in_thread(self) -> Iterator[Self]:
        """Serve from a daemon thread running an event loop of its own, until exit."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=type(self).__name__,
                                  daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(10)
            try:
                yield self
            finally:
                asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def routes(self) -> dict[str, Callable[[Exchange], Awaitable[None]]]:
        """Handlers by request path (the query string left out)."""
        return {self.path: self._scripted}

    async def _handle(self, exchange: Exchange) -> None:
        request = exchange.request
        self.requests.append(request)
        self.arrived.set()
        if not self.hold.is_set():
            await asyncio.to_thread(self.hold.wait, HOLD_LIMIT)
        route = self.routes().get(request.path.split("?")[0])
        if route is None:
            await exchange.send_json(404, self.error_body(404, f"no route {request.path}"))
        else:
            await route(exchange)

    async def _scripted(self, exchange: Exchange) -> None:
        body = exchange.request.body
        if self.script:
            item = self.script.popleft()
        else:
            item = self.respond(body) if self.respond is not None else self.default
        if isinstance(item, Failure):
            await exchange.send_json(item.status, self.error_body(item.status, item.message),
                                     item.headers)
        elif isinstance(item, Raw):
            if body.get("stream"):
                await exchange.stream(item.events, self.chunk_delay)
            else:
                await exchange.send_json(200, item.json)
        else:
            await asyncio.sleep(item.delay)
            await self._answer(exchange, item)

    async def _answer(self, exchange: Exchange, reply: Reply) -> None:
        body = exchange.request.body
        if not body.get("stream"):
            await asyncio.sleep(reply.first_token_delay)
            await exchange.send_json(200, self.message(body, reply))
            return
        if await exchange.stream(self.events(body, reply), self.chunk_delay,
                                 first_delay=reply.first_token_delay):
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
