"""ConclusionService."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import conclusion_pb2 as pb
from honcho_grpc_proto.v1 import conclusion_pb2_grpc as rpc

from honcho_grpc.domain.idempotent import run_write
from honcho_grpc.ids import new_id
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import conclusions as store
from honcho_grpc.store import resources
from honcho_grpc.store.conclusions import NewConclusion

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 100
MAX_CHARS = 65_535


class ConclusionServicer(rpc.ConclusionServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def CreateConclusions(self, request: pb.CreateConclusionsRequest,
                                context: Ctx) -> pb.CreateConclusionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.request_id("request_id", request.request_id)
            if not 1 <= len(request.conclusions) <= MAX_BATCH:
                c.fail("conclusions", f"needs 1 to {MAX_BATCH} conclusions")
            for i, item in enumerate(request.conclusions):
                c.id(f"conclusions[{i}].observer_id", item.observer_id)
                c.id(f"conclusions[{i}].observed_id", item.observed_id)
                c.id(f"conclusions[{i}].session_id", item.session_id, required=False)
                c.text(f"conclusions[{i}].content", item.content, max_chars=MAX_CHARS)
        embedder = self.deps.embedder
        vectors = await embedder.embed([item.content for item in request.conclusions])
        items = [
            NewConclusion(conclusion_id=new_id(), observer_id=item.observer_id,
                          observed_id=item.observed_id, session_id=item.session_id or None,
                          content=item.content, embedding=vec, model=embedder.model_id)
            for item, vec in zip(request.conclusions, vectors, strict=True)
        ]

        async def write(conn: Any) -> pb.CreateConclusionsResponse:
            await self._require_parents(conn, request)
            rows = await store.insert_conclusions(conn, request.workspace_id, items)
            return pb.CreateConclusionsResponse(conclusions=[convert.conclusion(r) for r in rows])

        return await run_write(self.deps.pool, workspace_id=request.workspace_id,
                               request_id=request.request_id, method="CreateConclusions",
                               request=request, response_type=pb.CreateConclusionsResponse,
                               write=write)

    async def _require_parents(self, conn: Any, request: pb.CreateConclusionsRequest) -> None:
        ws = request.workspace_id
        peers = {i.observer_id for i in request.conclusions} | {
            i.observed_id for i in request.conclusions}
        for peer_id in sorted(peers):
            common.require(await resources.get_peer(conn, ws, peer_id), "peer",
                           workspaceId=ws, peerId=peer_id)
        for session_id in sorted({i.session_id for i in request.conclusions if i.session_id}):
            common.require(await resources.get_session(conn, ws, session_id), "session",
                           workspaceId=ws, sessionId=session_id)

    async def ListConclusions(self, request: pb.ListConclusionsRequest,
                              context: Ctx) -> pb.ListConclusionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await store.list_conclusions(self.deps.pool, request.workspace_id, filters,
                                            request.include_invalid, request.reverse, size,
                                            request.page_token)
        return pb.ListConclusionsResponse(conclusions=[convert.conclusion(r) for r in page.rows],
                                          next_page_token=page.next_token)

    async def QueryConclusions(self, request: pb.QueryConclusionsRequest,
                               context: Ctx) -> pb.QueryConclusionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("observer_id", request.observer_id)
            c.id("observed_id", request.observed_id)
            c.text("query", request.query, max_chars=10_000)
            c.range("top_k", request.top_k, 0, 100)
            c.range("max_distance", request.max_distance, 0, 2)
            filters = common.filters(c, request.filters)
        vector = await self.deps.embedder.embed_one(request.query)
        rows = await store.query_conclusions(
            self.deps.pool, request.workspace_id, request.observer_id, request.observed_id,
            vector, request.top_k or 10, request.max_distance, filters)
        return pb.QueryConclusionsResponse(conclusions=[convert.conclusion(r) for r in rows])

    async def DeleteConclusion(self, request: pb.DeleteConclusionRequest,
                               context: Ctx) -> pb.DeleteConclusionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("conclusion_id", request.conclusion_id)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            found = await store.delete_conclusion(conn, request.workspace_id,
                                                  request.conclusion_id)
        common.check_found(found, "conclusion", workspaceId=request.workspace_id,
                           conclusionId=request.conclusion_id)
        return pb.DeleteConclusionResponse()
