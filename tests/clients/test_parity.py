"""The contract as other languages see it: the file options every .proto carries, and the
client wrappers' coverage of every RPC.

The descriptors come from the protobuf runtime's default pool (filled when the client's
generated modules are imported), looked up by proto file name, so the test does not depend
on where the Python stubs live.
"""

from __future__ import annotations

from pathlib import Path

import honcho_grpc_client  # noqa: F401  (imports every generated module: fills the pool)
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PROTO_FILES = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))

# One value per package (buf's PACKAGE_SAME_* lint rules); changing one breaks every user of
# that language's generated code, which is what this pin is for (buf.yaml excepts these
# options from `buf breaking`, see there).
LANGUAGE_OPTIONS = {
    "go_package": "honcho-grpc/gen/go/honcho/v1;honchov1",
    "java_package": "dev.honcho.v1",
    "java_multiple_files": True,
    "csharp_namespace": "Honcho.V1",
    "php_namespace": "Honcho\\V1",
    "ruby_package": "Honcho::V1",
    "objc_class_prefix": "HXX",
}


def file_proto(name: str) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName(name).CopyToProto(out)
    return out


def test_there_are_protos() -> None:
    assert len(PROTO_FILES) >= 11, PROTO_FILES


@pytest.mark.parametrize("name", PROTO_FILES)
def test_every_proto_carries_the_language_options(name: str) -> None:
    options = file_proto(name).options
    for option, want in LANGUAGE_OPTIONS.items():
        assert options.HasField(option), f"{name} lacks option {option}"
        assert getattr(options, option) == want, f"{name}: {option}"
    # Java: one outer class per file, named after it (AIP-191), so classes never collide.
    stem = Path(name).stem
    assert options.java_outer_classname == stem.title().replace("_", "") + "Proto", name
