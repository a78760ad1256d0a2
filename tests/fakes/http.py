"""A small HTTP/1.1 server on asyncio streams for the fake LLM servers: keep-alive, JSON
bodies, chunked streaming, and an event set when the client hangs up mid-stream (watched by
reading the socket: a closed client reads as EOF at once, no write needed to notice)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Exchange:
    """One request on one connection, and the means to answer it."""

    request: Request
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_json(self, status: int, payload: Any,
                        headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        head = {"Content-Type": "application/json", "Content-Length": str(len(data)),
                **(headers or {})}
        self.writer.write(_head(status, head) + data)
        await self.writer.drain()

    async def stream(self, events: list[bytes], delay: float, first_delay: float = 0.0
                     ) -> bool:
        """Send `events` as chunks, `delay` seconds apart (`first_delay` after the first);
        False if the client hung up first. The headers go out at once, as providers send
        them; asyncio sets TCP_NODELAY, so no small write waits for the client's ACK."""
        self.writer.write(_head(200, {"Content-Type": "text/event-stream",
                                      "Cache-Control": "no-cache",
                                      "Transfer-Encoding": "chunked"}))
        watcher = asyncio.create_task(self._watch())
        try:
            for index, event in enumerate(events):
                if self.hung_up.is_set():
                    return False
                self.writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await self.writer.drain()
                await asyncio.sleep(first_delay if index == 0 and first_delay else delay)
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
            return not self.hung_up.is_set()
        except ConnectionError:
            self.hung_up.set()
            return False
        finally:
            # Awaited, not just cancelled: a watcher still reading would make the next
            # request's read on this keep-alive connection fail.
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        # The client sends nothing while it reads a response: any read result means EOF/reset.
        with contextlib.suppress(ConnectionError):
            await self.reader.read(1)
        self.hung_up.set()


Handler = Callable[[Exchange], Awaitable[None]]


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}


class HTTPServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                await self.handler(Exchange(request, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # Stopped under an idle keep-alive connection: end quietly (Python 3.11's stream
            # protocol logs a connection task that ends cancelled as an error).
            if not self.stopping:
                raise
        finally:
            self.tasks.discard(task)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed an idle keep-alive connection
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in header_lines if line)}
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, json.loads(raw) if raw else None)
