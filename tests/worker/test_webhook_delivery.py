"""Deliveries connect to the address the URL policy checked, never to a fresh DNS answer
(rebinding), keep the name in Host and (https) in SNI and certificate verification, and follow
no redirect."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from honcho_grpc.settings import WebhookSettings
from honcho_grpc.worker.tasks.webhook import deliver, post_pinned

# `.invalid` never resolves (RFC 2606): a delivery that reached the receiver under this name
# cannot have looked it up.
NAME = "rebind.invalid"


@contextmanager
def receiver(tls: ssl.SSLContext | None = None, status: int = 200
             ) -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def certificate(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the server's context, a client context trusting only this certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def test_http_delivery_goes_to_the_checked_address() -> None:
    with receiver() as (port, seen):
        status = await post_pinned(f"http://{NAME}:{port}/hook", "127.0.0.1", b"{}",
                                   {"Content-Type": "application/json"}, 5.0)
    assert status == 200
    assert seen[0]["host"] == f"{NAME}:{port}"


async def test_https_delivery_keeps_sni_and_verifies_the_name(tmp_path: Path) -> None:
    server_tls, trusting = certificate(tmp_path, NAME)
    with receiver(server_tls) as (port, seen):
        status = await post_pinned(f"https://{NAME}:{port}/hook", "127.0.0.1", b"{}", {}, 5.0,
                                   verify=trusting)
        assert status == 200 and seen[0]["host"] == f"{NAME}:{port}"
        # The certificate is checked against the URL's name, not the address connected to.
        _, other = certificate(tmp_path, "other.invalid")
        with pytest.raises(httpx.ConnectError):
            await post_pinned(f"https://{NAME}:{port}/hook", "127.0.0.1", b"{}", {}, 5.0,
                              verify=other)


async def test_redirects_are_not_followed() -> None:
    settings = WebhookSettings(allow_private=True, timeout_seconds=5.0)
    with receiver(status=302) as (port, seen), pytest.raises(RuntimeError, match="HTTP 302"):
        await deliver(f"http://127.0.0.1:{port}/hook", b"{}", settings)
    assert len(seen) == 1


async def test_a_name_that_does_not_resolve_is_retried_not_sent() -> None:
    with pytest.raises(RuntimeError, match="does not resolve"):
        await deliver(f"https://{NAME}/hook", b"{}", WebhookSettings(timeout_seconds=1.0))
