"""Assertions on rich gRPC errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DOMAIN = "honcho.dev"


class Failure:
    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.error = error
        self.code = error.code()
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None, "every error carries google.rpc.Status details"
        self.info = error_details_pb2.ErrorInfo()
        self.violations: list[str] = []
        infos = 0
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(self.info)
                infos += 1
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.violations = [v.field for v in bad.field_violations]
        assert infos == 1, "exactly one ErrorInfo"
        assert self.info.domain == DOMAIN


async def fails(call: Awaitable[Any], code: grpc.StatusCode, *, reason: str | None = None,
                field: str | None = None) -> Failure:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    failure = Failure(caught.value)
    assert failure.code == code, (failure.code, caught.value.details())
    if reason is not None:
        assert failure.info.reason == reason
    if field is not None:
        assert field in failure.violations, failure.violations
    return failure
