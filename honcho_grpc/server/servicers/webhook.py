"""WebhookService: endpoints of a workspace, and a test event. Deliveries are queue jobs the
worker runs (signed, retried); see honcho_grpc/worker/tasks/webhook.py."""

from __future__ import annotations

from typing import Any

import grpc
from honcho_grpc_proto.v1 import webhook_pb2 as pb
from honcho_grpc_proto.v1 import webhook_pb2_grpc as rpc

from honcho_grpc.domain import webhooks
from honcho_grpc.server import common, convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking

Ctx = grpc.aio.ServicerContext[Any, Any]


class WebhookServicer(rpc.WebhookServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def CreateWebhookEndpoint(self, request: pb.CreateWebhookEndpointRequest,
                                    context: Ctx) -> pb.CreateWebhookEndpointResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.text("url", request.url, max_chars=webhooks.MAX_URL_CHARS)
        endpoint, created = await webhooks.register(self.deps.pool, self.deps.settings.webhook,
                                                    request.workspace_id, request.url)
        return pb.CreateWebhookEndpointResponse(endpoint=convert.webhook(endpoint),
                                                created=created)

    async def ListWebhookEndpoints(self, request: pb.ListWebhookEndpointsRequest,
                                   context: Ctx) -> pb.ListWebhookEndpointsResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            size = common.page_size(self.deps, request.page_size, c)
        page = await webhooks.endpoints(self.deps.pool, request.workspace_id, size,
                                        request.page_token)
        return pb.ListWebhookEndpointsResponse(
            endpoints=[convert.webhook(e) for e in page.items], next_page_token=page.next_token)

    async def DeleteWebhookEndpoint(self, request: pb.DeleteWebhookEndpointRequest,
                                    context: Ctx) -> pb.DeleteWebhookEndpointResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
            c.id("endpoint_id", request.endpoint_id)
        await webhooks.remove(self.deps.pool, request.workspace_id, request.endpoint_id)
        return pb.DeleteWebhookEndpointResponse()

    async def TestWebhook(self, request: pb.TestWebhookRequest,
                          context: Ctx) -> pb.TestWebhookResponse:
        with checking() as c:
            c.id("workspace_id", request.workspace_id)
        await webhooks.send_test(self.deps.pool, request.workspace_id)
        return pb.TestWebhookResponse()
