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
