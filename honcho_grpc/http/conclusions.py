"""/v3/workspaces/{workspace_id}/conclusions and /webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from honcho_grpc_proto.v1 import conclusion_pb2 as pb
from honcho_grpc_proto.v1 import webhook_pb2

from honcho_grpc.domain import conclusions, webhooks
from honcho_grpc.http import shapes
from honcho_grpc.http.body import StrictJsonRoute
from honcho_grpc.http.common import (
    CONCLUSION_FIELDS,
    Capture,
    Paging,
    authorize,
    deps,
    once,
    paginate,
    renamed,
)
from honcho_grpc.model import Conclusion, ConclusionDraft
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import checking

router = APIRouter(prefix="/v3/workspaces/{workspace_id}", route_class=StrictJsonRoute)
Json = dict[str, Any]
# Honcho's query filters name the pair under either spelling.
OBSERVER_KEYS = ("observer", "observer_id")
OBSERVED_KEYS = ("observed", "observed_id")


@router.post("/conclusions", status_code=201)
async def create(workspace_id: str, body: shapes.CreateConclusions, request: Request,
                 d: Deps = Depends(deps)) -> list[Json]:
    await authorize(request, "ConclusionService/CreateConclusions", pb.CreateConclusionsRequest(
        workspace_id=workspace_id, conclusions=[
            pb.ConclusionInput(observer_id=i.observer_id, session_id=i.session_id or "")
            for i in body.conclusions]))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        for i, item in enumerate(body.conclusions):
            c.id(f"conclusions[{i}].observer_id", item.observer_id)
            c.id(f"conclusions[{i}].observed_id", item.observed_id)
            c.id(f"conclusions[{i}].session_id", item.session_id or "", required=False)
            c.text(f"conclusions[{i}].content", item.content, max_chars=conclusions.MAX_CHARS)
    drafts = [ConclusionDraft(observer_id=i.observer_id, observed_id=i.observed_id,
                              session_id=i.session_id or None, content=i.content)
              for i in body.conclusions]
    stored: Capture[list[Conclusion]] = Capture()
    await conclusions.create(d.pool, d.embedder, workspace_id, drafts,
                             once("CreateConclusions"), stored)
    return [shapes.conclusion(s) for s in stored.value]


@router.post("/conclusions/list")
async def list_conclusions(workspace_id: str, request: Request,
                           body: shapes.ListBody | None = None, paging: Paging = Depends(),
                           d: Deps = Depends(deps)) -> Json:
    await authorize(request, "ConclusionService/ListConclusions",
                    pb.ListConclusionsRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    filters = renamed(body.filters if body else None, CONCLUSION_FIELDS)
    return await paginate(
        paging, lambda size, token: conclusions.list_conclusions(
            d.pool, workspace_id, filters, False, paging.reverse, size, token),
        shapes.conclusion)


@router.post("/conclusions/query")
async def query(workspace_id: str, body: shapes.ConclusionQuery, request: Request,
                d: Deps = Depends(deps)) -> list[Json]:
    rest = dict(body.filters or {})
    observer = next((str(rest.pop(k)) for k in OBSERVER_KEYS if k in rest), "")
    observed = next((str(rest.pop(k)) for k in OBSERVED_KEYS if k in rest), "")
    await authorize(request, "ConclusionService/QueryConclusions",
                    pb.QueryConclusionsRequest(workspace_id=workspace_id, observer_id=observer))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("filters.observer", observer)
        c.id("filters.observed", observed)
        c.text("query", body.query, max_chars=10_000)
    found = await conclusions.query(d.pool, d.embedder, workspace_id, observer, observed,
                                    body.query, body.top_k, body.distance or 0.0, rest or None)
    return [shapes.conclusion(s) for s in found]


@router.delete("/conclusions/{conclusion_id}", status_code=204)
async def delete(workspace_id: str, conclusion_id: str, request: Request,
                 d: Deps = Depends(deps)) -> Response:
    await authorize(request, "ConclusionService/DeleteConclusion", pb.DeleteConclusionRequest(
        workspace_id=workspace_id, conclusion_id=conclusion_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("conclusion_id", conclusion_id)
    await conclusions.delete(d.pool, workspace_id, conclusion_id)
    return Response(status_code=204)


@router.post("/webhooks")
async def create_webhook(workspace_id: str, body: shapes.WebhookBody, request: Request,
                         d: Deps = Depends(deps)) -> JSONResponse:
    await authorize(request, "WebhookService/CreateWebhookEndpoint",
                    webhook_pb2.CreateWebhookEndpointRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.text("url", body.url, max_chars=webhooks.MAX_URL_CHARS)
    endpoint, created = await webhooks.register(d.pool, d.settings.webhook, workspace_id,
                                                body.url)
    return JSONResponse(shapes.webhook(endpoint), status_code=201 if created else 200)


@router.get("/webhooks")
async def list_webhooks(workspace_id: str, request: Request, paging: Paging = Depends(),
                        d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WebhookService/ListWebhookEndpoints",
                    webhook_pb2.ListWebhookEndpointsRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    return await paginate(
        paging, lambda size, token: webhooks.endpoints(d.pool, workspace_id, size, token),
        shapes.webhook)


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(workspace_id: str, endpoint_id: str, request: Request,
                         d: Deps = Depends(deps)) -> Response:
    await authorize(request, "WebhookService/DeleteWebhookEndpoint",
                    webhook_pb2.DeleteWebhookEndpointRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
        c.id("endpoint_id", endpoint_id)
    await webhooks.remove(d.pool, workspace_id, endpoint_id)
    return Response(status_code=204)


@router.get("/webhooks/test")
async def test_webhook(workspace_id: str, request: Request, d: Deps = Depends(deps)) -> Json:
    await authorize(request, "WebhookService/TestWebhook",
                    webhook_pb2.TestWebhookRequest(workspace_id=workspace_id))
    with checking() as c:
        c.id("workspace_id", workspace_id)
    await webhooks.send_test(d.pool, workspace_id)
    return {"message": "Test event queued"}
