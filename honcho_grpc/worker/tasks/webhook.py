"""Webhook delivery: POST `{"type", "data", "timestamp"}` (compact JSON, sorted keys) to one
endpoint, signed with `X-Honcho-Signature: <hex HMAC-SHA256 of the body>`. A non-2xx answer
or a network error is retried by the queue with backoff; one work unit per endpoint keeps
each endpoint's events in order.

Targets are checked again at delivery by the domain's URL policy
(honcho_grpc/domain/webhooks.py), and the delivery connects to the address that was checked
(post_pinned): the name may resolve elsewhere by then. Redirects are not followed.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import httpx

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
from honcho_grpc.worker.tasks import (
    PermanentError,
    Result,
    TaskContext,
    TransientError,
    payloads,
)


async def post_pinned(url: str, address: str | None, body: bytes, headers: dict[str, str],
                      timeout_seconds: float, verify: ssl.SSLContext | bool = True) -> int:
    """One POST to `url`, connected to `address` (the one the policy checked) rather than
    to whatever the name resolves to now: a DNS answer that changes between the check and
    the connection (rebinding) cannot move the delivery. The name still goes in Host and,
    over https, in SNI and certificate verification. No redirect is followed, no proxy from
    the environment used (either would reach an address nobody checked)."""
    scheme, host, port = parse_url(url)
    parts = urlsplit(url)
    target = url
    extensions: dict[str, str] = {}
    if address is not None:
        literal = f"[{address}]" if ":" in address else address
        target = parts._replace(netloc=f"{literal}:{port}").geturl()
        if scheme == "https":
            extensions["sni_hostname"] = host
    async with httpx.AsyncClient(verify=verify, follow_redirects=False, trust_env=False,
                                 timeout=timeout_seconds) as client, client.stream(
            "POST", target, content=body, headers={**headers, "Host": parts.netloc},
            extensions=extensions) as response:
        return response.status_code


async def deliver(url: str, body: bytes, settings: WebhookSettings) -> int:
    """POST the body; raises on a refused URL (permanent) or a non-2xx answer (retried)."""
    try:
        addresses = await check_url(url, settings.allow_private)
    except UrlRefused as exc:
        raise PermanentError(f"webhook URL refused: {exc}") from exc
    if not addresses and not settings.allow_private:
        raise TransientError("the webhook host does not resolve now")  # retried with backoff
    headers = {"Content-Type": "application/json", "User-Agent": "honcho-grpc-webhook"}
    if secret := settings.secret.get_secret_value():
        headers[SIGNATURE_HEADER] = sign(body, secret)
    try:
        status = await post_pinned(url, addresses[0] if addresses else None, body, headers,
                                   settings.timeout_seconds)
    except httpx.HTTPError as exc:
        raise TransientError(f"webhook delivery failed: {type(exc).__name__}") from exc
    if not 200 <= status < 300:
        raise TransientError(f"webhook endpoint answered HTTP {status}")
    return status


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    payload = payloads(jobs, WebhookPayload)[0]
    url = await endpoint_url(ctx.db, jobs[0].workspace_id, payload.endpoint_id)
    if url is None:
        return Result()  # the endpoint was removed: nothing to deliver
    await deliver(url, body_for(payload.type, payload.data, payload.timestamp),
                  ctx.settings.webhook)
    return Result()
