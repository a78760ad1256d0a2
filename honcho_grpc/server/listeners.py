"""Where the server listens and how: plaintext or TLS (mTLS with a client CA), connection
lifetimes, and the optional plaintext listener that serves only health.

TLS files are checked when the server starts (a missing file, a key that does not match its
certificate: one clear error naming the setting) and re-read when they change, for new
connections: cert-manager and similar tools rotate certificates in place, and the server
need not restart for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from honcho_grpc.settings import ServerSettings


class TLSConfigError(ValueError):
    """The TLS settings name files that are missing, unreadable or do not fit together."""


def server_options(s: ServerSettings) -> list[tuple[str, int]]:
    """Channel arguments of the listening server (grpc core's names)."""
    options = [
        ("grpc.max_receive_message_length", s.max_receive_message_bytes),
        ("grpc.max_send_message_length", s.max_send_message_bytes),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", s.min_ping_interval_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", _ms(s.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(s.keepalive_timeout_seconds)),
        # grpc core (1.85) closes a connection whose ping goes unanswered after this one, not
        # keepalive_timeout (default 1 min; measured: tests/api/test_connections.py).
        ("grpc.http2.ping_timeout_ms", _ms(s.keepalive_timeout_seconds)),
    ]
    if s.max_connection_age_seconds > 0:
        options.append(("grpc.max_connection_age_ms", _ms(s.max_connection_age_seconds)))
    if s.max_connection_age_grace_seconds > 0:  # grpc's own default: no limit
        options.append(
            ("grpc.max_connection_age_grace_ms", _ms(s.max_connection_age_grace_seconds)))
    return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass
class CertificateFiles:
    """The PEM files of the TLS settings, and when they were last read."""

    cert: Path
    key: Path
    client_ca: Path | None
    _seen: tuple[int, ...] = field(default=(), init=False)

    def stamp(self) -> tuple[int, ...]:
        return tuple(os.stat(p).st_mtime_ns for p in self.paths())

    def paths(self) -> list[Path]:
        return [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]

    def check(self) -> None:
        """Fail now, naming the setting, rather than at the first handshake."""
        names = {self.cert: "SERVER_TLS_CERT_FILE", self.key: "SERVER_TLS_KEY_FILE",
                 self.client_ca: "SERVER_TLS_CLIENT_CA_FILE"}
        for path in self.paths():
            if not path.is_file():
                raise TLSConfigError(f"{names[path]}: {path} is not a readable file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(
                f"SERVER_TLS_CERT_FILE / SERVER_TLS_KEY_FILE: {self.cert} and {self.key} are "
                f"not a PEM certificate chain and its private key ({exc})") from None
        if self.client_ca:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (ssl.SSLError, OSError) as exc:
                raise TLSConfigError(f"SERVER_TLS_CLIENT_CA_FILE: {self.client_ca} holds no "
                                     f"PEM certificate ({exc})") from None

    def load(self) -> grpc.ServerCertificateConfiguration:
        self._seen = self.stamp()
        return grpc.ssl_server_certificate_configuration(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes() if self.client_ca else None)

    def reload_if_changed(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc asks before every new connection's handshake; None keeps the current files.
        A rotation caught half-written (a key that does not fit yet) keeps them too, and is
        tried again at the next connection."""
        try:
            if self.stamp() == self._seen:
                return None
            self.check()
            return self.load()
        except (OSError, TLSConfigError):
            return None


def tls_files(s: ServerSettings) -> CertificateFiles | None:
    if not (s.tls_cert_file or s.tls_key_file or s.tls_client_ca_file):
        return None
    if not (s.tls_cert_file and s.tls_key_file):
        raise TLSConfigError("SERVER_TLS_CERT_FILE and SERVER_TLS_KEY_FILE are needed together "
                             "(SERVER_TLS_CLIENT_CA_FILE only adds client certificates to them)")
    files = CertificateFiles(Path(s.tls_cert_file), Path(s.tls_key_file),
                             Path(s.tls_client_ca_file) if s.tls_client_ca_file else None)
    files.check()
    return files


def server_credentials(s: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials for the settings, or None for plaintext."""
    files = tls_files(s)
    if files is None:
        return None
    # The fetcher may return None ("no change", grpc's documentation); the stubs say otherwise.
    return grpc.dynamic_ssl_server_credentials(
        files.load(), files.reload_if_changed,  # type: ignore[arg-type]
        require_client_authentication=files.client_ca is not None)


def bind(server: grpc.aio.Server, s: ServerSettings) -> int:
    """Add the service's port (TLS when configured); returns the port bound."""
    address = f"{s.host}:{s.port}"
    credentials = server_credentials(s)
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)


async def serve_health_only(s: ServerSettings,
                            servicer: health.aio.HealthServicer) -> asyncio.Task[None]:
    """A plaintext listener on SERVER_HEALTH_PORT with grpc.health.v1 alone, answering what
    the main listener's health answers (the same servicer). The task it returns stops it
    when cancelled: the server's own shutdown does that last, so probes see NOT_SERVING
    throughout a drain."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"{s.host}:{s.health_port}")
    await server.start()
    return asyncio.create_task(_hold(server))


async def _hold(server: grpc.aio.Server) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await server.stop(0)
