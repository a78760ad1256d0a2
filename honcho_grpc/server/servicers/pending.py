"""Services whose logic arrives with later issues. Every RPC answers UNIMPLEMENTED with a
message naming the method, rather than the generated base class's bare NotImplementedError."""

from __future__ import annotations

from typing import Any

from honcho_grpc_proto.v1 import (
    dialectic_pb2_grpc,
    key_pb2_grpc,
)

from honcho_grpc.errors import unimplemented


def _pending(service: str, methods: tuple[str, ...]) -> dict[str, Any]:
    def make(name: str) -> Any:
        async def handler(self: Any, request: Any, context: Any) -> Any:
            raise unimplemented(f"{service}.{name}")

        return handler

    return {name: make(name) for name in methods}


PendingDialectic = type("PendingDialectic", (dialectic_pb2_grpc.DialecticServiceServicer,),
                        _pending("DialecticService", ("Chat", "StreamChat")))
PendingKey = type("PendingKey", (key_pb2_grpc.KeyServiceServicer,),
                  _pending("KeyService", ("CreateKey",)))
