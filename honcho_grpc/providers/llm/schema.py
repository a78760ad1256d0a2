"""A small JSON-Schema validator for the subset structured output uses: `type` (one or a
list), `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`,
`minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`, `anyOf`,
`oneOf`, `allOf` and local `$ref`s (`#/$defs/...`). Other keywords are ignored, as hints.
(The `jsonschema` package is not a dependency; this subset is all we need.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MAX_REF_DEPTH = 32  # a guard against recursive schemas


def validate(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation as 'path: problem'; empty when the instance is valid."""
    return list(_errors(instance, schema, "$", schema, 0))


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """`schema` with a local `$ref` followed (to any depth up to the guard)."""
    for _ in range(MAX_REF_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported, not {ref!r}")
        node: Any = root
        for part in filter(None, ref[1:].split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    raise ValueError("$ref chain too deep")


def type_ok(value: Any, name: str) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        # bool is an int in Python, never in JSON
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    check = checks.get(name)
    return check(value) if check else True


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python, true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _errors(value: Any, schema: Any, path: str, root: dict[str, Any],
            depth: int) -> Iterator[str]:
    if schema is True or schema == {}:
        return
    if schema is False:
        yield f"{path}: not allowed"
        return
    if depth > MAX_REF_DEPTH:
        yield f"{path}: schema nests too deep"
        return
    schema = resolve(schema, root)
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    if names and not any(type_ok(value, t) for t in names):
        yield f"{path}: expected {' or '.join(names)}, got {_kind(value)}"
        return
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        yield f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and not _same(value, schema["const"]):
        yield f"{path}: must be {schema['const']!r}"
    yield from _combinators(value, schema, path, root, depth)
    if isinstance(value, dict):
        yield from _object(value, schema, path, root, depth)
    elif isinstance(value, list):
        yield from _array(value, schema, path, root, depth)
    elif isinstance(value, str):
        yield from _string(value, schema, path)
    elif type_ok(value, "number"):
        yield from _number(value, schema, path)


def _combinators(value: Any, schema: dict[str, Any], path: str, root: dict[str, Any],
                 depth: int) -> Iterator[str]:
    def ok(branch: Any) -> bool:
        return not any(_errors(value, branch, path, root, depth + 1))

    if "anyOf" in schema and not any(ok(b) for b in schema["anyOf"]):
        yield f"{path}: matches none of anyOf"
    if "oneOf" in schema and sum(ok(b) for b in schema["oneOf"]) != 1:
        yield f"{path}: must match exactly one of oneOf"
    for branch in schema.get("allOf", []):
        yield from _errors(value, branch, path, root, depth + 1)


def _object(value: dict[str, Any], schema: dict[str, Any], path: str, root: dict[str, Any],
            depth: int) -> Iterator[str]:
    props: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            yield f"{path}: missing required property {name!r}"
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            yield from _errors(item, props[name], f"{path}.{name}", root, depth + 1)
        elif extra is False:
            yield f"{path}: unexpected property {name!r}"
        elif isinstance(extra, dict):
            yield from _errors(item, extra, f"{path}.{name}", root, depth + 1)


def _array(value: list[Any], schema: dict[str, Any], path: str, root: dict[str, Any],
           depth: int) -> Iterator[str]:
    if len(value) < schema.get("minItems", 0):
        yield f"{path}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"{path}: more than {schema['maxItems']} items"
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            yield from _errors(item, items, f"{path}[{i}]", root, depth + 1)


def _string(value: str, schema: dict[str, Any], path: str) -> Iterator[str]:
    if len(value) < schema.get("minLength", 0):
        yield f"{path}: shorter than {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"{path}: longer than {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        yield f"{path}: does not match {schema['pattern']!r}"


def _number(value: float, schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: below the minimum {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{path}: above the maximum {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield f"{path}: not above {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield f"{path}: not below {schema['exclusiveMaximum']}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", dict: "object"}.get(type(value), type(value).__name__)
