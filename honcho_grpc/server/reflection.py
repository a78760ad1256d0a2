"""Server reflection under both names clients ask for: `grpc.reflection.v1` (grpcurl,
Postman and current tools try it first) and `grpc.reflection.v1alpha` (older tools).

grpcio-reflection implements v1alpha only. v1 is the same protocol published under a new
package: its messages have the same fields with the same numbers, so the bytes of a v1alpha
request or response are those of the v1 one. v1 is therefore served by the v1alpha servicer,
registered under the v1 method name. The v1 file descriptor, derived from v1alpha's by
renaming its package, is added to the descriptor pool so that v1 itself can be described
through reflection like any other service.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """v1alpha's file descriptor, renamed to v1's package and file."""
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(proto)
    old = f".{proto.package}."
    proto.name, proto.package = V1_FILE, V1_PACKAGE
    proto.ClearField("options")  # language options of v1alpha's generated code
    for message in proto.message_type:
        for item in message.field:
            if item.type_name.startswith(old):
                item.type_name = f".{V1_PACKAGE}.{item.type_name[len(old):]}"
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, f".{V1_PACKAGE}.")
            method.output_type = method.output_type.replace(old, f".{V1_PACKAGE}.")
    return proto


def register_v1_descriptor(pool: descriptor_pool.DescriptorPool | None = None) -> None:
    """Add v1's descriptor to the pool once (a future grpcio-reflection may bring its own)."""
    pool = pool or descriptor_pool.Default()
    try:
        pool.FindFileByName(V1_FILE)
    except KeyError:
        pool.Add(v1_file_descriptor())


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Reflection v1 and v1alpha, each listing `service_names` and both reflection services."""
    register_v1_descriptor()
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha.ServerReflectionRequest.FromString,
        response_serializer=v1alpha.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME, {"ServerReflectionInfo": handler}),))
