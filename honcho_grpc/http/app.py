"""The HTTP face's application and its server: uvicorn on the gRPC server's event loop, with
the same Deps (pool, embedder, LLM provider)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from honcho_grpc.http import conclusions, errors, messages, peers, scopes, sessions, workspaces
from honcho_grpc.server.auth import Authorizer
from honcho_grpc.server.deps import Deps


def build_app(deps: Deps) -> FastAPI:
    app = FastAPI(title="honcho-grpc (Honcho v3 HTTP API)", docs_url=None, redoc_url=None)
    app.state.deps = deps
    auth = deps.settings.auth
    app.state.authorizer = Authorizer(auth, deps.pool) if auth.use_auth else None
    for module in (workspaces, peers, sessions, messages, conclusions, scopes):
        app.include_router(module.router)
    # Domain and store errors are answered in ExceptionMiddleware; the catch-all (anything
    # else: a bug) in ServerErrorMiddleware, which logs it and still answers {"detail"}.
    for kind in (*errors.HANDLED, Exception):
        app.add_exception_handler(kind, errors.handle)
    app.add_exception_handler(RequestValidationError, errors.invalid_request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


class _Server(uvicorn.Server):
    """Signals stay with the process's owner (server/app.serve stops gRPC and HTTP together);
    uvicorn would otherwise take SIGINT/SIGTERM for itself while it serves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """A started uvicorn server bound to `port` (0 picks one)."""

    def __init__(self, deps: Deps, host: str, port: int) -> None:
        self.sock = socket.create_server((host, port), reuse_port=False)
        # Accepted connections inherit it: uvicorn writes a response's head and body
        # separately, and with Nagle on the body waited for the client's delayed ACK (40 ms).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(build_app(deps), log_level="warning", lifespan="off",
                                access_log=False)
        self.server = _Server(config)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()
