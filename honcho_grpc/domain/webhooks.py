"""Webhooks as the domain sees them: a workspace's endpoints (at most `WEBHOOK_MAX_ENDPOINTS`,
one per URL), which URLs may receive events (the SSRF policy, checked when an endpoint is
registered and again at every delivery), and the signed body a delivery carries. Delivery
itself is the worker's (honcho_grpc/worker/tasks/webhook.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from honcho_grpc.domain import workspaces
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import InvalidArgument, failed_precondition, not_found
from honcho_grpc.ids import new_id
from honcho_grpc.model import Page, WebhookEndpoint
from honcho_grpc.settings import WebhookSettings
from honcho_grpc.store import queue
from honcho_grpc.store import webhooks as store

SIGNATURE_HEADER = "X-Honcho-Signature"
MAX_URL_CHARS = 2048


class UrlRefused(ValueError):
    """The URL may not be used as a webhook target."""


# IPv6 ranges that carry an IPv4 address, which is where a packet to them finally goes.
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def reached(ip: Address) -> list[Address]:
    """The address itself and every IPv4 address it embeds (IPv4-mapped, IPv4-compatible,
    NAT64, 6to4, Teredo server and client): the places a connection to it can end up."""
    out: list[Address] = [ip]
    if isinstance(ip, ipaddress.IPv4Address):
        return out
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are themselves, not IPv4
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in net for net in NAT64):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    return out


def is_public(address: str) -> bool:
    """Whether every place `address` can reach is global unicast."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return all(a.is_global and not a.is_multicast for a in reached(ip))


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable http(s) URL, else UrlRefused."""
    if len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        raise UrlRefused("must be an http or https URL without spaces, at most 2048 chars")
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:  # an unclosed IPv6 bracket, a port out of range or not a number
        raise UrlRefused(f"is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not hostname:
        raise UrlRefused("must be an http or https URL with a host")
    if parts.username or parts.password or "@" in parts.netloc:
        raise UrlRefused("must not carry credentials")
    return parts.scheme, hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, allow_private: bool) -> list[str]:
    """Refuse URLs whose host is, or resolves to, a non-public address. Returns the addresses
    (empty when the name does not resolve now; delivery checks again)."""
    _, host, port = parse_url(url)
    if allow_private:
        return []
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        raise UrlRefused("targets a loopback address")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    addresses = sorted({str(info[4][0]) for info in infos})
    if not all(is_public(a) for a in addresses):
        raise UrlRefused("targets a private, loopback, link-local or otherwise non-public "
                         "address (also through an IPv4 address embedded in IPv6)")
    return addresses


def body_for(event_type: str, data: dict[str, Any], timestamp: str) -> bytes:
    return json.dumps({"data": data, "timestamp": timestamp, "type": event_type},
                      sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


TEST_EVENT = "test.event"


async def register(pool: asyncpg.Pool, settings: WebhookSettings, workspace_id: str,
                   url: str) -> tuple[WebhookEndpoint, bool]:
    """The workspace's endpoint for `url`, created unless it exists (then `False`). The URL
    must pass the SSRF policy (INVALID_ARGUMENT on `url`); a workspace holds at most
    `settings.max_endpoints` (FAILED_PRECONDITION)."""
    try:
        await check_url(url, settings.allow_private)
    except UrlRefused as exc:
        raise InvalidArgument.field("url", str(exc), reason="WEBHOOK_URL_REFUSED") from exc
    await workspaces.get(pool, workspace_id)
    async with transaction(pool) as conn:
        # Creations in one workspace take turns, so that the limit holds under concurrency.
        await store.lock_endpoints(conn, workspace_id)
        existing = await store.endpoint_by_url(conn, workspace_id, url)
        if existing is not None:
            return existing, False
        limit = settings.max_endpoints
        if await store.count_endpoints(conn, workspace_id) >= limit:
            raise failed_precondition(f"a workspace has at most {limit} webhook endpoints",
                                      "WEBHOOK_ENDPOINT_LIMIT", limit=str(limit))
        return await store.insert_endpoint(conn, workspace_id, new_id(), url), True


async def endpoints(pool: asyncpg.Pool, workspace_id: str, page_size: int,
                    token: str) -> Page[WebhookEndpoint]:
    await workspaces.get(pool, workspace_id)
    return await store.list_endpoints(pool, workspace_id, page_size, token)


async def remove(pool: asyncpg.Pool, workspace_id: str, endpoint_id: str) -> None:
    """The endpoint and its undelivered events go."""
    async with transaction(pool) as conn:
        found = await store.delete_endpoint(conn, workspace_id, endpoint_id)
        await queue.drop_undelivered(conn, workspace_id, endpoint_id)
    if not found:
        raise not_found("webhook_endpoint", workspaceId=workspace_id, endpointId=endpoint_id)


async def send_test(pool: asyncpg.Pool, workspace_id: str) -> int:
    """Queue a test event to every endpoint of the workspace; returns how many."""
    await workspaces.get(pool, workspace_id)
    async with transaction(pool) as conn:
        return await queue.enqueue_webhook_deliveries(conn, workspace_id, TEST_EVENT,
                                                      {"workspace_id": workspace_id})
