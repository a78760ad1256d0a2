"""WebhookService: endpoints of a workspace, and a test event. Deliveries are queue jobs the
worker runs (signed, retried); see honcho_grpc/worker/tasks/webhook.py."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import webhook_pb2 as pb
from honcho_grpc_proto.v1 import webhook_pb2_grpc as rpc

from honcho_grpc.domain.webhooks import UrlRefused, check_url
from honcho_grpc.errors import InvalidArgument, failed_precondition
from honcho_grpc.ids import new_id
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking
from honcho_grpc.store import filters as f
from honcho_grpc.store import queue, resources
from honcho_grpc.store.pages import binding, keyset_page

Ctx = grpc.aio.ServicerContext[Any, Any]


class WebhookServicer(rpc.WebhookServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _require_workspace(self, workspace_id: str) -> None:
        row = await resources.get_workspace(self.deps.pool, workspace_id)
        common.require(row, "workspace", workspaceId=workspace_id)

    async def CreateWebhookEndpoint(self, request: pb.CreateWebhookEndpointRequest,
                                    context: Ctx) -> pb.CreateWebhookEndpointResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.text("url", request.url, max_chars=2048)
        try:
            await check_url(request.url, self.deps.settings.webhook.allow_private)
        except UrlRefused as exc:
            raise InvalidArgument.field("url", str(exc), reason="WEBHOOK_URL_REFUSED") from exc
        await self._require_workspace(request.workspace_id)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            row, created = await _get_or_create(conn, request.workspace_id, request.url,
                                                self.deps.settings.webhook.max_endpoints)
        return pb.CreateWebhookEndpointResponse(endpoint=convert.webhook(row), created=created)

    async def ListWebhookEndpoints(self, request: pb.ListWebhookEndpointsRequest,
                                   context: Ctx) -> pb.ListWebhookEndpointsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
        await self._require_workspace(request.workspace_id)
        params = f.Params()
        page = await keyset_page(
            self.deps.pool, select="SELECT e.* FROM webhook_endpoints e",
            where=f"e.workspace_id = {params.add(request.workspace_id)}", params=params,
            order=("e.created_at", "e.endpoint_id"), reverse=False, page_size=size,
            token=request.page_token, bound_to=binding("webhooks", request.workspace_id))
        return pb.ListWebhookEndpointsResponse(
            endpoints=[convert.webhook(r) for r in page.rows], next_page_token=page.next_token)

    async def DeleteWebhookEndpoint(self, request: pb.DeleteWebhookEndpointRequest,
                                    context: Ctx) -> pb.DeleteWebhookEndpointResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("endpoint_id", request.endpoint_id)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND endpoint_id = $2",
                request.workspace_id, request.endpoint_id)
            await queue.drop_undelivered(conn, request.workspace_id, request.endpoint_id)
        common.check_found(status != "DELETE 0", "webhook_endpoint",
                           workspaceId=request.workspace_id, endpointId=request.endpoint_id)
        return pb.DeleteWebhookEndpointResponse()

    async def TestWebhook(self, request: pb.TestWebhookRequest,
                          context: Ctx) -> pb.TestWebhookResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
        await self._require_workspace(request.workspace_id)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await queue.enqueue_webhook_deliveries(conn, request.workspace_id, "test.event",
                                                   {"workspace_id": request.workspace_id})
        return pb.TestWebhookResponse()


async def _get_or_create(conn: Any, workspace_id: str, url: str,
                         limit: int) -> tuple[Any, bool]:
    """Idempotent per URL; at most `limit` endpoints per workspace."""
    # Serialise creations in the workspace, so the limit holds under concurrency.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))",
                       workspace_id)
    existing = await conn.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE workspace_id = $1 AND url = $2",
        workspace_id, url)
    if existing is not None:
        return existing, False
    count = await conn.fetchval("SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1",
                                workspace_id)
    if count >= limit:
        raise failed_precondition(f"a workspace has at most {limit} webhook endpoints",
                                  "WEBHOOK_ENDPOINT_LIMIT", limit=str(limit))
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (workspace_id, endpoint_id, url) VALUES ($1, $2, $3) "
        "RETURNING *", workspace_id, new_id(), url)
    return row, True
