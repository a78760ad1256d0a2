"""Webhook delivery: POST `{"type", "data", "timestamp"}` (compact JSON, sorted keys) to one
endpoint, signed with `X-Honcho-Signature: <hex HMAC-SHA256 of the body>`. A non-2xx answer
or a network error is retried by the queue with backoff; one work unit per endpoint keeps
each endpoint's events in order.

Targets are checked again at delivery by the domain's URL policy
(honcho_grpc/domain/webhooks.py): the name may resolve elsewhere by then. Redirects are not
followed.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from psycopg.types.json import Jsonb

from honcho_grpc.domain.webhooks import (
    SIGNATURE_HEADER,
    UrlRefused,
    body_for,
    check_url,
    parse_url,
    sign,
)
from honcho_grpc.settings import WebhookSettings
from honcho_grpc.worker.db import Conn
from honcho_grpc.worker.queue import QUEUE_CHANNEL, Job, job_trace_context
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext


def _post(url: str, body: bytes, headers: dict[str, str], address: str | None,
          timeout: float) -> int:
    """One POST with the stdlib client (no redirects). With `address`, connect to the
    address already checked rather than resolving the name a second time."""
    scheme, host, port = parse_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(address or host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={**headers, "Host": parts.netloc})
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


async def deliver(url: str, body: bytes, settings: WebhookSettings) -> int:
    """POST the body; raises on a refused URL (permanent) or a non-2xx answer (retried)."""
    try:
        addresses = await check_url(url, settings.allow_private)
    except UrlRefused as exc:
        raise PermanentError(f"webhook URL refused: {exc}") from exc
    headers = {"Content-Type": "application/json", "User-Agent": "honcho-grpc-webhook"}
    if secret := settings.secret.get_secret_value():
        headers[SIGNATURE_HEADER] = sign(body, secret)
    status = await asyncio.to_thread(_post, url, body, headers,
                                     addresses[0] if addresses else None,
                                     settings.timeout_seconds)
    if not 200 <= status < 300:
        raise RuntimeError(f"webhook endpoint answered HTTP {status}")
    return status


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    job = jobs[0]
    p = job.payload
    async with ctx.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT url FROM webhook_endpoints WHERE workspace_id = %s AND endpoint_id = %s",
            (job.workspace_id, p.get("endpoint_id")))).fetchone()
    if row is None:
        return Result()  # the endpoint was removed: nothing to deliver
    body = body_for(str(p.get("type")), p.get("data") or {}, str(p.get("timestamp")))
    await deliver(row["url"], body, ctx.settings.webhook)
    return Result()


async def enqueue_deliveries(conn: Conn, workspace_id: str, event_type: str,
                             data: dict[str, Any]) -> int:
    """One delivery job per endpoint of the workspace, in the caller's transaction."""
    payload = {"type": event_type, "data": data, "timestamp": datetime.now(UTC).isoformat()}
    cur = await conn.execute(
        "INSERT INTO queue (workspace_id, task_type, work_unit_key, payload, trace_context) "
        "SELECT workspace_id, 'webhook', 'webhook:' || workspace_id || ':' || endpoint_id, "
        "%s::jsonb || jsonb_build_object('endpoint_id', endpoint_id), %s "
        "FROM webhook_endpoints WHERE workspace_id = %s",
        (Jsonb(payload), job_trace_context(), workspace_id))
    if cur.rowcount:
        await conn.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, workspace_id))
    return cur.rowcount
