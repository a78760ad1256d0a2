"""Webhooks as the domain sees them: which URLs may receive events (the SSRF policy, checked
when an endpoint is registered and again at every delivery), and the signed body a delivery
carries. Delivery itself is the worker's (honcho_grpc/worker/tasks/webhook.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Honcho-Signature"
MAX_URL_CHARS = 2048


class UrlRefused(ValueError):
    """The URL may not be used as a webhook target."""


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable http(s) URL, else UrlRefused."""
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        raise UrlRefused("must be an http or https URL without spaces, at most 2048 chars")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise UrlRefused("must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("has an invalid port") from exc
    return parts.scheme, parts.hostname, port


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
    if any(_blocked(a) for a in addresses):
        raise UrlRefused("targets a private, loopback or link-local address")
    return addresses


def body_for(event_type: str, data: dict[str, Any], timestamp: str) -> bytes:
    return json.dumps({"data": data, "timestamp": timestamp, "type": event_type},
                      sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
