"""ConclusionService."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import conclusion_pb2 as pb
from honcho_grpc_proto.v1 import conclusion_pb2_grpc as rpc

from honcho_grpc.domain import conclusions
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.model import ConclusionDraft
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking

Ctx = grpc.aio.ServicerContext[Any, Any]


class ConclusionServicer(rpc.ConclusionServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def CreateConclusions(self, request: pb.CreateConclusionsRequest,
                                context: Ctx) -> pb.CreateConclusionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.request_id("request_id", request.request_id)
            if not 1 <= len(request.conclusions) <= conclusions.MAX_BATCH:
                c.fail("conclusions", f"needs 1 to {conclusions.MAX_BATCH} conclusions")
            for i, item in enumerate(request.conclusions):
                c.id(f"conclusions[{i}].observer_id", item.observer_id)
                c.id(f"conclusions[{i}].observed_id", item.observed_id)
                c.id(f"conclusions[{i}].session_id", item.session_id, required=False)
                c.text(f"conclusions[{i}].content", item.content,
                       max_chars=conclusions.MAX_CHARS)
        drafts = [ConclusionDraft(observer_id=item.observer_id, observed_id=item.observed_id,
                                  session_id=item.session_id or None, content=item.content)
                  for item in request.conclusions]
        return await conclusions.create(
            self.deps.pool, self.deps.embedder, request.workspace_id, drafts,
            Retry(request.request_id, "CreateConclusions", request,
                  pb.CreateConclusionsResponse),
            lambda stored: pb.CreateConclusionsResponse(
                conclusions=[convert.conclusion(s) for s in stored]))

    async def ListConclusions(self, request: pb.ListConclusionsRequest,
                              context: Ctx) -> pb.ListConclusionsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
            filters = common.filters(c, request.filters)
        page = await conclusions.list_conclusions(self.deps.pool, request.workspace_id, filters,
                                                  request.include_invalid, request.reverse,
                                                  size, request.page_token)
        return pb.ListConclusionsResponse(
            conclusions=[convert.conclusion(s) for s in page.items],
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
        found = await conclusions.query(
            self.deps.pool, self.deps.embedder, request.workspace_id, request.observer_id,
            request.observed_id, request.query, request.top_k, request.max_distance, filters)
        return pb.QueryConclusionsResponse(conclusions=[convert.conclusion(s) for s in found])

    async def DeleteConclusion(self, request: pb.DeleteConclusionRequest,
                               context: Ctx) -> pb.DeleteConclusionResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("conclusion_id", request.conclusion_id)
        await conclusions.delete(self.deps.pool, request.workspace_id, request.conclusion_id)
        return pb.DeleteConclusionResponse()
