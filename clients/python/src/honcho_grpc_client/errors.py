"""Typed errors carrying the server's `google.rpc.Status` details.

Every non-OK status the server sends has exactly one `ErrorInfo` (a stable `reason`, the
domain `honcho.dev`, and `metadata` naming the values involved), `BadRequest` field violations
for bad input, and `RetryInfo` when retrying later may help. The client turns a failed call
into the `HonchoError` subclass for its status code, with those details parsed:

    try:
        honcho.peer("alice").card()
    except NotFoundError as e:
        print(e.reason, e.metadata)          # PEER_NOT_FOUND {'peerId': 'alice', ...}
    except InvalidArgumentError as e:
        print(e.field_violations)            # [FieldViolation(field='peer_id', ...)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path and what is wrong with it."""

    field: str
    description: str


class HonchoError(Exception):
    """A call failed. `code` is the gRPC status code; the rest comes from the status details."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, reason: str = "",
                 domain: str = "", metadata: dict[str, str] | None = None,
                 field_violations: list[FieldViolation] | None = None,
                 retry_delay: float | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[FieldViolation] = list(field_violations or [])
        self.retry_delay = retry_delay
        self.details: list[Any] = list(details or [])

    def __str__(self) -> str:
        head = f"{self.code.name}: {self.message}"
        return f"{head} [{self.reason}]" if self.reason else head

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code.name}, message={self.message!r}, "
                f"reason={self.reason!r}, metadata={self.metadata!r})")


class CallCancelledError(HonchoError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(HonchoError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(HonchoError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(HonchoError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(HonchoError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(HonchoError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(HonchoError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(HonchoError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(HonchoError):
    code = grpc.StatusCode.ABORTED


class OutOfRangeError(HonchoError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(HonchoError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(HonchoError):
    code = grpc.StatusCode.INTERNAL


class UnavailableError(HonchoError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(HonchoError):
    code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(HonchoError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[HonchoError]] = {
    cls.code: cls for cls in (
        CallCancelledError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
        AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError,
        FailedPreconditionError, AbortedError, OutOfRangeError, UnimplementedError,
        InternalError, UnavailableError, DataLossError, UnauthenticatedError,
    )
}


def _status_details(trailing: Any) -> status_pb2.Status | None:
    for key, value in trailing or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a garbled trailer must not hide the original error
                return None
    return None


def from_rpc_error(error: grpc.RpcError) -> HonchoError:
    """The typed error for a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`)."""
    call: Any = error
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    message = (call.details() if hasattr(call, "details") else None) or str(error)
    trailing = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    reason, domain, meta = "", "", {}
    violations: list[FieldViolation] = []
    retry_delay: float | None = None
    details: list[Any] = []
    status = _status_details(trailing)
    if status is not None:
        for packed in status.details:
            if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                packed.Unpack(info)
                reason, domain, meta = info.reason, info.domain, dict(info.metadata)
                details.append(info)
            elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                packed.Unpack(bad)
                violations.extend(FieldViolation(v.field, v.description)
                                  for v in bad.field_violations)
                details.append(bad)
            elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                packed.Unpack(retry)
                retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
                details.append(retry)
            else:
                details.append(packed)
    cls = _BY_CODE.get(code, HonchoError)
    err = cls(message, code=code, reason=reason, domain=domain, metadata=meta,
              field_violations=violations, retry_delay=retry_delay, details=details)
    err.__cause__ = error
    return err
