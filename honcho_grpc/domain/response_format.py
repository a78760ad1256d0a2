"""A caller's response_format: the JSON Schema a structured dialectic answer must follow.

Checked at the edge, for every provider, against the meta-schema of the draft it names
(2020-12 when it names none): a schema that is not one (`"properties": []`, a `type` that
is no type) is the caller's mistake, answered INVALID_ARGUMENT before any model runs,
instead of surfacing later as a provider's or the local provider's crash."""

from __future__ import annotations

from typing import Any

from jsonschema import exceptions, validators

from honcho_grpc.domain.nesting import json_depth

# Deeper schemas are refused before the meta-schema check, which recurses per level (an
# HTTP body can nest far deeper than a gRPC Struct's 100 levels).
MAX_SCHEMA_DEPTH = 32


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What makes `schema` unusable as a response format, or None."""
    if schema.get("type", "object") != "object":
        return "must be a JSON Schema of type object"
    if json_depth(schema, stop_after=MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"is nested more than {MAX_SCHEMA_DEPTH} levels deep"
    if not isinstance(schema.get("$schema", ""), str):  # the draft is looked up by this URI
        return "must name its draft ($schema) as a URI string"
    try:
        validator = validators.validator_for(schema, default=validators.Draft202012Validator)
    except exceptions.UnknownType:  # pragma: no cover - validator_for ignores unknown drafts
        return "names an unknown JSON Schema draft"
    try:
        validator.check_schema(schema)
    except exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        return f"is not a valid JSON Schema at {where}: {exc.message[:200]}"
    return None


def as_object_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema a model is given: one that names no type is taken as the object schema
    schema_problem lets it be (a model, like the local provider, would otherwise be free to
    answer a string, and the answer must be an object)."""
    if not schema or "type" in schema:
        return schema or None
    return {"type": "object", **schema}
