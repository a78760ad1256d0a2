"""Domain errors. The server maps them to gRPC statuses in one place (server/errors.py).

Each error has a stable UPPER_SNAKE `reason` (sent in `google.rpc.ErrorInfo`) and metadata
with lowerCamel keys holding the values that appear in the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc


@dataclass
class HonchoError(Exception):
    message: str
    reason: str = "ERROR"
    metadata: dict[str, str] = field(default_factory=dict)
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retry_after: float | None = None  # seconds; sent as google.rpc.RetryInfo

    def __str__(self) -> str:
        return self.message


@dataclass
class FieldViolation:
    field: str
    description: str


@dataclass
class InvalidArgument(HonchoError):
    violations: list[FieldViolation] = field(default_factory=list)
    reason: str = "INVALID_ARGUMENT"
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def field(cls, name: str, description: str,
              reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
        return cls(message=f"{name}: {description}", reason=reason,
                   violations=[FieldViolation(name, description)], metadata={"field": name})


def not_found(kind: str, **ids: str) -> HonchoError:
    """`not_found("peer", workspaceId="w", peerId="p")` -> PEER_NOT_FOUND."""
    names = ", ".join(f"{k}={v!r}" for k, v in ids.items())
    return HonchoError(message=f"{kind} not found ({names})", reason=f"{kind.upper()}_NOT_FOUND",
                       metadata=dict(ids), code=grpc.StatusCode.NOT_FOUND)


def already_exists(kind: str, **ids: str) -> HonchoError:
    names = ", ".join(f"{k}={v!r}" for k, v in ids.items())
    return HonchoError(message=f"{kind} already exists ({names})",
                       reason=f"{kind.upper()}_ALREADY_EXISTS", metadata=dict(ids),
                       code=grpc.StatusCode.ALREADY_EXISTS)


def failed_precondition(message: str, reason: str, **meta: str) -> HonchoError:
    return HonchoError(message=message, reason=reason, metadata=dict(meta),
                       code=grpc.StatusCode.FAILED_PRECONDITION)


def permission_denied(message: str = "permission denied", reason: str = "PERMISSION_DENIED",
                      **meta: str) -> HonchoError:
    return HonchoError(message=message, reason=reason, metadata=dict(meta),
                       code=grpc.StatusCode.PERMISSION_DENIED)


def unauthenticated(message: str, reason: str = "UNAUTHENTICATED") -> HonchoError:
    return HonchoError(message=message, reason=reason, code=grpc.StatusCode.UNAUTHENTICATED)


def resource_exhausted(message: str, reason: str, **meta: str) -> HonchoError:
    return HonchoError(message=message, reason=reason, metadata=dict(meta),
                       code=grpc.StatusCode.RESOURCE_EXHAUSTED)


def server_busy(what: str, retry_after: float = 1.0) -> HonchoError:
    """The server is out of a shared resource right now (not the caller's fault): retry."""
    return HonchoError(message=f"{what}; retry shortly", reason="SERVER_BUSY",
                       code=grpc.StatusCode.UNAVAILABLE, retry_after=retry_after)
