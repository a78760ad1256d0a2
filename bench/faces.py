"""The two faces a client can use, behind one small interface, so that each benchmark runs the
same load through gRPC and through the Honcho v3 HTTP API; and the wait for a workspace's
work to be done, read from GetQueueStatus as a caller would.

The HTTP face uses httpx (what the official Python SDK uses underneath) with one keep-alive
connection per concurrent client, as the SDK would hold.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

import grpc
import httpx
from honcho_grpc_proto.v1 import (
    message_pb2,
    message_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from bench.common import ServerProcess

FACES = ("grpc", "http")
Draft = tuple[str, str]  # (peer id, content)


class Face(Protocol):
    name: str

    async def create(self, ws: str, session: str, drafts: list[Draft]) -> None:
        """CreateMessages: one batch, acknowledged when stored with its work enqueued."""
        ...

    async def search(self, ws: str, query: str, *, session: str = "", peer: str = "",
                     limit: int = 10) -> int:
        """SearchMessages in the narrowest scope given; the number of hits."""
        ...

    async def aclose(self) -> None: ...


class GrpcFace:
    name = "grpc"

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.messages = message_pb2_grpc.MessageServiceStub(self.channel)
        self.searches = search_pb2_grpc.SearchServiceStub(self.channel)

    async def create(self, ws: str, session: str, drafts: list[Draft]) -> None:
        await self.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=session,
            messages=[message_pb2.MessageInput(peer_id=p, content=c) for p, c in drafts]),
            timeout=60)

    async def search(self, ws: str, query: str, *, session: str = "", peer: str = "",
                     limit: int = 10) -> int:
        reply = await self.searches.SearchMessages(search_pb2.SearchMessagesRequest(
            workspace_id=ws, session_id=session, peer_id=peer, query=query, limit=limit),
            timeout=30)
        return len(reply.hits)

    async def aclose(self) -> None:
        await self.channel.close()


class HttpFace:
    name = "http"

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=f"{base_url}/v3", timeout=60)

    async def create(self, ws: str, session: str, drafts: list[Draft]) -> None:
        reply = await self.client.post(
            f"/workspaces/{ws}/sessions/{session}/messages",
            json={"messages": [{"peer_id": p, "content": c} for p, c in drafts]})
        reply.raise_for_status()

    async def search(self, ws: str, query: str, *, session: str = "", peer: str = "",
                     limit: int = 10) -> int:
        scope = (f"/sessions/{session}" if session else f"/peers/{peer}" if peer else "")
        reply = await self.client.post(f"/workspaces/{ws}{scope}/search",
                                       json={"query": query, "limit": limit})
        reply.raise_for_status()
        return len(reply.json())

    async def aclose(self) -> None:
        await self.client.aclose()


def open_face(name: str, server: ServerProcess) -> Face:
    return GrpcFace(server.address) if name == "grpc" else HttpFace(server.http_url)


@dataclass
class Done:
    """Seconds from the start of the writes until nothing of the workspace waited for its
    embedding (searchable) and until its derivation jobs were done too (processed); None
    when not within the limit, with the work still open then."""

    searchable_s: float | None
    processed_s: float | None
    embedding_pending: int
    open_jobs: int


async def wait_done(address: str, ws: str, start: float, limit_s: float,
                    poll_s: float = 0.25) -> Done:
    """Poll GetQueueStatus (its embedding backlog and its reasoning jobs) as a caller would.
    The HTTP face has no field for the embedding backlog (Honcho's shape has none), so both
    faces are waited for through gRPC: the same server, the same work."""
    searchable = processed = None
    pending = open_jobs = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        while time.perf_counter() - start < limit_s:
            status = await stub.GetQueueStatus(
                workspace_pb2.GetQueueStatusRequest(workspace_id=ws), timeout=30)
            pending = status.embedding.pending
            open_jobs = status.totals.pending + status.totals.in_progress
            now = time.perf_counter() - start
            if searchable is None and pending == 0:
                searchable = now
            if searchable is not None and open_jobs == 0:
                processed = now
                break
            await asyncio.sleep(poll_s)
    return Done(searchable, processed, pending, open_jobs)
