"""A protoc plugin that runs grpcio-tools' bundled generators (`python`, `grpc_python`).

buf runs protoc's built-in generators only by name, and grpc_python is not one of them;
grpcio-tools ships both inside its own protoc, not as plugins. This plugin hands buf's request
to that protoc (`--descriptor_set_in`) and returns what it writes, so buf.gen.yaml drives the
pinned generator (the root pyproject's `dev` extra).

buf's compiler fills every field's `json_name`; protoc's parser records it only when a .proto
spells it out, and the Python generator embeds the descriptor as recorded. Default json_names
are cleared first, so the output is byte for byte what `python -m grpc_tools.protoc` makes
from the .proto files directly.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2


def default_json_name(name: str) -> str:
    """protoc's ToJsonName: drop each underscore and capitalise the letter after it."""
    out: list[str] = []
    upper = False
    for ch in name:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out)


def _fields(file: descriptor_pb2.FileDescriptorProto
            ) -> Iterator[descriptor_pb2.FieldDescriptorProto]:
    yield from file.extension
    messages = list(file.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        yield from message.field
        yield from message.extension


def as_protoc_parsed(files: list[descriptor_pb2.FileDescriptorProto]
                     ) -> descriptor_pb2.FileDescriptorSet:
    out = descriptor_pb2.FileDescriptorSet(file=files)
    for file in out.file:
        for field in _fields(file):
            if field.json_name == default_json_name(field.name):
                field.ClearField("json_name")
    return out


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL)
    with tempfile.TemporaryDirectory() as tmp:
        descriptors, out = Path(tmp) / "descriptors.binpb", Path(tmp) / "out"
        out.mkdir()
        descriptors.write_bytes(as_protoc_parsed(list(request.proto_file)).SerializeToString())
        done = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptors}",
             f"--python_out={out}", f"--grpc_python_out={out}", *request.file_to_generate],
            capture_output=True, text=True)
        if done.returncode:
            response.error = f"grpc_tools.protoc failed: {done.stderr.strip()}"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
