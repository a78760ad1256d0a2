"""The one place that compiles the JSON filter language to parameterised SQL.

Grammar (a dict, from a protobuf Struct):
- logical keys `AND`, `OR`, `NOT`: lists of filters (NOT negates each element with
  "IS NOT TRUE", so rows whose column is NULL are kept); sibling keys are ANDed;
- `field: scalar` equality; `field: null` IS NULL; `field: "*"` no condition; a bare list is
  `in` (on metadata it stays containment);
- `field: {op: value, ...}` with ops gte lte gt lt ne in contains icontains (`ne: null` is
  IS NOT NULL, `in: []` matches nothing);
- `metadata: {key: value}` JSON containment per key, `metadata: {key: {op: value}}` compares
  the key's value, numerically when the operand is a number.
It fails closed: unknown keys, operators or operand types raise FilterError naming the path.
Values (and metadata keys) are always bind parameters; column SQL comes from a whitelist.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

MAX_DEPTH = 5
MAX_CONDITIONS = 50
OPERATORS = frozenset({"gte", "lte", "gt", "lt", "ne", "in", "contains", "icontains"})
COMPARE = {"gte": ">=", "lte": "<=", "gt": ">", "lt": "<"}
Kind = Literal["text", "int", "float", "bool", "timestamp", "jsonb", "enum"]
CASTS = {"text": "text", "int": "bigint", "float": "double precision", "bool": "boolean",
         "timestamp": "timestamptz", "enum": "text"}
# A JSON value extracted as text compares numerically only when it looks like a number.
NUMERIC_RE = r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$"


class FilterError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Column:
    sql: str
    kind: Kind
    enum_values: tuple[str, ...] = ()


FilterSchema = dict[str, Column]


@dataclass
class Params:
    """Bind parameters in order; `add` returns the placeholder."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def workspace_filters(a: str) -> FilterSchema:
    return {"id": Column(f"{a}.workspace_id", "text"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def peer_filters(a: str) -> FilterSchema:
    return {"id": Column(f"{a}.peer_id", "text"), "peer_id": Column(f"{a}.peer_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def session_filters(a: str) -> FilterSchema:
    return {"id": Column(f"{a}.session_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "active": Column(f"{a}.active", "bool"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def message_filters(a: str) -> FilterSchema:
    return {"id": Column(f"{a}.message_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "peer_id": Column(f"{a}.peer_id", "text"),
            "token_count": Column(f"{a}.token_count", "int"),
            "sequence": Column(f"{a}.seq", "int"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def conclusion_filters(a: str) -> FilterSchema:
    return {"id": Column(f"{a}.conclusion_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "observer_id": Column(f"{a}.observer_id", "text"),
            "observed_id": Column(f"{a}.observed_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "level": Column(f"{a}.level", "enum",
                            ("explicit", "deductive", "inductive", "contradiction")),
            "times_derived": Column(f"{a}.times_derived", "int"),
            "created_at": Column(f"{a}.created_at", "timestamp")}


def compile_filter(filters: dict[str, Any] | None, schema: FilterSchema, params: Params,
                   root: str = "filters") -> str:
    """A SQL boolean expression (`TRUE` for no filter)."""
    if not filters:
        return "TRUE"
    return _Compiler(schema, params).node(filters, root, 1)


class _Compiler:
    def __init__(self, schema: FilterSchema, params: Params) -> None:
        self.schema = schema
        self.params = params
        self.conditions = 0

    def count(self, path: str) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise FilterError(path, f"more than {MAX_CONDITIONS} conditions")

    def node(self, value: Any, path: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise FilterError(path, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(value, dict):
            raise FilterError(path, "must be an object")
        parts = []
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key in ("AND", "OR", "NOT"):
                parts.append(self.logical(key, item, sub, depth))
            elif key in self.schema:
                parts.append(self.field(self.schema[key], item, sub))
            else:
                raise FilterError(sub, f"unknown field; allowed: {sorted(self.schema)}")
        return "(" + " AND ".join(parts) + ")" if parts else "TRUE"

    def logical(self, op: str, items: Any, path: str, depth: int) -> str:
        if not isinstance(items, list):
            raise FilterError(path, "must be a list of filters")
        compiled = [self.node(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(items)]
        if not compiled:
            return "TRUE" if op != "OR" else "FALSE"
        if op == "AND":
            return "(" + " AND ".join(compiled) + ")"
        if op == "OR":
            return "(" + " OR ".join(compiled) + ")"
        return "(" + " AND ".join(f"(({c}) IS NOT TRUE)" for c in compiled) + ")"

    # -- plain columns ------------------------------------------------------------------

    def field(self, col: Column, value: Any, path: str) -> str:
        self.count(path)
        if col.kind == "jsonb":
            return self.metadata(col, value, path)
        if value == "*":
            return "TRUE"
        if value is None:
            return f"{col.sql} IS NULL"
        if isinstance(value, list):
            return self.op(col, "in", value, path)
        if isinstance(value, dict):
            if not value:
                raise FilterError(path, "operator object is empty")
            return "(" + " AND ".join(self.op(col, o, v, f"{path}.{o}")
                                      for o, v in value.items()) + ")"
        return f"{col.sql} = {self.bind(col, value, path)}"

    def op(self, col: Column, op: str, value: Any, path: str) -> str:
        if op not in OPERATORS:
            raise FilterError(path, f"unknown operator; allowed: {sorted(OPERATORS)}")
        if op == "ne":
            if value is None:
                return f"{col.sql} IS NOT NULL"
            return f"{col.sql} IS DISTINCT FROM {self.bind(col, value, path)}"
        if op == "in":
            return self.in_list(col, value, path)
        if op in ("contains", "icontains"):
            if col.kind not in ("text", "enum") or not isinstance(value, str):
                raise FilterError(path, "needs a text field and a string operand")
            like = "LIKE" if op == "contains" else "ILIKE"
            return f"{col.sql} {like} {self.params.add(_like_pattern(value))}::text"
        if col.kind in ("bool", "enum"):
            raise FilterError(path, f"{op} does not apply to this field")
        return f"{col.sql} {COMPARE[op]} {self.bind(col, value, path)}"

    def in_list(self, col: Column, value: Any, path: str) -> str:
        if not isinstance(value, list):
            raise FilterError(path, "needs a list")
        if "*" in value:
            return "TRUE"
        if not value:
            return "FALSE"  # fail closed: an empty allowlist admits nothing
        items = [self.convert(col, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return f"{col.sql} = ANY({self.params.add(items)}::{CASTS[col.kind]}[])"

    def bind(self, col: Column, value: Any, path: str) -> str:
        return f"{self.params.add(self.convert(col, value, path))}::{CASTS[col.kind]}"

    def convert(self, col: Column, value: Any, path: str) -> Any:
        converter = _CONVERTERS[col.kind]
        try:
            out = converter(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise FilterError(path, f"expected a {col.kind} value") from exc
        if col.kind == "enum" and out not in col.enum_values:
            raise FilterError(path, f"must be one of {list(col.enum_values)}")
        return out

    # -- metadata -----------------------------------------------------------------------

    def metadata(self, col: Column, value: Any, path: str) -> str:
        if value == "*":
            return "TRUE"
        if not isinstance(value, dict):
            raise FilterError(path, "metadata filters must be objects")
        parts = []
        for key, item in value.items():
            sub = f"{path}.{key}"
            if not isinstance(key, str) or not key:
                raise FilterError(sub, "metadata keys must be non-empty strings")
            if isinstance(item, dict) and item and set(item) & OPERATORS:
                if not set(item) <= OPERATORS:
                    raise FilterError(sub, "mixes operators and plain keys")
                parts.append(self.meta_ops(col, key, item, sub))
            elif item == "*":
                parts.append(f"({col.sql} ? {self.params.add(key)}::text)")
            else:
                doc = json.dumps({key: item})
                parts.append(f"({col.sql} @> {self.params.add(doc)}::jsonb)")
        return "(" + " AND ".join(parts) + ")" if parts else "TRUE"

    def meta_ops(self, col: Column, key: str, ops: dict[str, Any], path: str) -> str:
        text = f"({col.sql} ->> {self.params.add(key)}::text)"
        parts = []
        for op, value in ops.items():
            sub = f"{path}.{op}"
            if op == "ne" and value is None:
                parts.append(f"{text} IS NOT NULL")
            elif op == "in":
                if not isinstance(value, list):
                    raise FilterError(sub, "needs a list")
                if not value:
                    parts.append("FALSE")
                else:
                    items = [_json_text(v, f"{sub}[{i}]") for i, v in enumerate(value)]
                    parts.append(f"{text} = ANY({self.params.add(items)}::text[])")
            elif op in ("contains", "icontains"):
                if not isinstance(value, str):
                    raise FilterError(sub, "needs a string operand")
                like = "LIKE" if op == "contains" else "ILIKE"
                parts.append(f"{text} {like} {self.params.add(_like_pattern(value))}::text")
            else:
                parts.append(self.meta_compare(text, op, value, sub))
        return "(" + " AND ".join(parts) + ")"

    def meta_compare(self, text: str, op: str, value: Any, path: str) -> str:
        sql_op = "IS DISTINCT FROM" if op == "ne" else COMPARE[op]
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise FilterError(path, "must be a finite number")
            number = (f"(CASE WHEN {text} ~ '{NUMERIC_RE}' "
                      f"THEN ({text})::double precision END)")
            return f"{number} {sql_op} {self.params.add(float(value))}::double precision"
        return f"{text} {sql_op} {self.params.add(_json_text(value, path))}::text"


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _json_text(value: Any, path: str) -> str:
    """How `->>` renders a scalar JSON value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        return value
    raise FilterError(path, "expected a string, number or boolean")


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    if not float(value).is_integer():
        raise ValueError
    result = int(value)
    if not -(2**63) <= result < 2**63:
        raise OverflowError
    return result


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    if not math.isfinite(value):
        raise ValueError
    return float(value)


def _to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    if "\x00" in value:
        raise ValueError
    return value


def _to_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _to_text, "enum": _to_text, "int": _to_int, "float": _to_float,
    "bool": _to_bool, "timestamp": _to_timestamp,
}
