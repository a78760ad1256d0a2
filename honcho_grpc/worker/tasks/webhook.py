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
from urllib.parse import urlsplit

from honcho_grpc.domain.webhooks import (
    SIGNATURE_HEADER,
    UrlRefused,
    body_for,
    check_url,
    parse_url,
    sign,
)
from honcho_grpc.settings import WebhookSettings
from honcho_grpc.store.webhooks import endpoint_url
from honcho_grpc.work_units import WebhookPayload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext, payloads


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
    payload = payloads(jobs, WebhookPayload)[0]
    url = await endpoint_url(ctx.db, jobs[0].workspace_id, payload.endpoint_id)
    if url is None:
        return Result()  # the endpoint was removed: nothing to deliver
    await deliver(url, body_for(payload.type, payload.data, payload.timestamp),
                  ctx.settings.webhook)
    return Result()
