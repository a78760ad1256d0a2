"""Small helpers shared by servicers: field masks, page sizes, filters."""

from __future__ import annotations

from typing import Any

from google.protobuf import field_mask_pb2, json_format, struct_pb2
from google.protobuf.message import Message as ProtoMessage

from honcho_grpc.model import Json
from honcho_grpc.server import convert
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker
from honcho_grpc.server.validate import page_size as _page_size

MAX_FILTER_BYTES = 16 * 1024
OUTPUT_ONLY = frozenset({"id", "workspace_id", "session_id", "peer_id", "create_time", "active",
                         "token_count", "sequence", "content"})


def mask_changes(resource: ProtoMessage, mask: field_mask_pb2.FieldMask, allowed: set[str],
                 c: Checker, field: str) -> Json:
    """Columns to update from an AIP-134 field mask: absent = every populated field, `*` = all
    allowed fields, unknown paths rejected, output-only paths ignored."""
    paths = list(mask.paths)
    if not paths:
        paths = [p for p in sorted(allowed) if resource.HasField(p)]
    elif paths == ["*"]:
        paths = sorted(allowed)
    changes: Json = {}
    for path in paths:
        top = path.split(".", 1)[0]
        if top in allowed and path == top:
            value = getattr(resource, top)
            changes[top] = convert.to_dict(value)
        elif top in OUTPUT_ONLY:
            continue
        else:
            c.fail(f"{field}.paths", f"cannot update {path!r}; updatable: {sorted(allowed)}")
    return changes


def page_size(deps: Deps, value: int, c: Checker) -> int:
    return _page_size("page_size", value, deps.settings.app.default_page_size,
                      deps.settings.app.max_page_size, c)


def filters(c: Checker, value: struct_pb2.Struct | None) -> Json | None:
    """The filter Struct as a dict (None when empty). Its shape, depth and operands are
    checked by the compiler (store/filters.py); here only its size is bounded."""
    if value is None or not value.fields:
        return None
    if value.ByteSize() > MAX_FILTER_BYTES:
        c.fail("filters", f"is larger than {MAX_FILTER_BYTES} bytes")
        return None
    data: dict[str, Any] = json_format.MessageToDict(value)
    return data

