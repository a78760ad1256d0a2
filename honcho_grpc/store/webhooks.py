"""SQL for webhook endpoints. (Deliveries are queue rows: store/queue.py.)"""

from __future__ import annotations

from honcho_grpc.model import Page, WebhookEndpoint
from honcho_grpc.store import Conn, Executor
from honcho_grpc.store.filters import Params
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, one

ENDPOINT = columns(WebhookEndpoint)


async def lock_endpoints(conn: Conn, workspace_id: str) -> None:
    """Serialise changes to the workspace's endpoints until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))",
                       workspace_id)


async def endpoint_by_url(conn: Executor, workspace_id: str, url: str) -> WebhookEndpoint | None:
    return one(WebhookEndpoint, await conn.fetchrow(
        f"SELECT {ENDPOINT} FROM webhook_endpoints WHERE workspace_id = $1 AND url = $2",
        workspace_id, url))


async def count_endpoints(conn: Executor, workspace_id: str) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1", workspace_id))


async def insert_endpoint(conn: Conn, workspace_id: str, endpoint_id: str,
                          url: str) -> WebhookEndpoint:
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (workspace_id, endpoint_id, url) VALUES ($1, $2, $3) "
        f"RETURNING {ENDPOINT}", workspace_id, endpoint_id, url)
    return WebhookEndpoint(*row)


async def list_endpoints(conn: Executor, workspace_id: str, page_size: int,
                         token: str) -> Page[WebhookEndpoint]:
    params = Params()
    return await keyset_page(
        conn, WebhookEndpoint,
        select=f"SELECT {columns(WebhookEndpoint, 'e')} FROM webhook_endpoints e",
        where=f"e.workspace_id = {params.add(workspace_id)}", params=params,
        order=("e.created_at", "e.endpoint_id"), reverse=False, page_size=page_size,
        token=token, bound_to=binding("webhooks", workspace_id))


async def delete_endpoint(conn: Conn, workspace_id: str, endpoint_id: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND endpoint_id = $2",
        workspace_id, endpoint_id)
    return status != "DELETE 0"


async def endpoint_url(conn: Executor, workspace_id: str, endpoint_id: str) -> str | None:
    """The endpoint's URL, as a delivery reads it; None once it was removed."""
    url = await conn.fetchval(
        "SELECT url FROM webhook_endpoints WHERE workspace_id = $1 AND endpoint_id = $2",
        workspace_id, endpoint_id)
    return str(url) if url is not None else None
