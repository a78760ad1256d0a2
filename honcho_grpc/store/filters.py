"""The one place that compiles the JSON filter language to parameterised SQL.

Grammar (a dict, from a protobuf Struct, so numbers arrive as floats):
- logical keys `AND`, `OR`, `NOT`: lists of filters (NOT negates each element with
  "IS NOT TRUE", so rows whose column is NULL are kept, and ANDs the results); sibling keys
  are ANDed; at most `MAX_DEPTH` levels of filter objects, `MAX_CONDITIONS` conditions;
- `field: scalar` equality; `field: null` IS NULL; `field: "*"` no condition; a bare list is
  `in`;
- `field: {op: value, ...}` with ops gte lte gt lt ne in contains icontains (`ne` is IS
  DISTINCT FROM, `ne: null` IS NOT NULL, `in: []` matches nothing, `"*"` in an `in` list
  matches everything; contains is LIKE and icontains ILIKE, both literal substrings, on text
  fields only); operands are type-checked against the field;
- `metadata: {key: value}` JSON containment of `{key: value}` (a bare list too);
  `metadata: {key: "*"}` the key is present; `metadata: {key: {op: value}}` compares the
  key's value: numerically when the operand is a number (JSON numbers, and strings that look
  like numbers; anything else is NULL, never an error), as "true"/"false" for booleans,
  else as text; `in` compares numbers numerically and other items as text (`"*"` in it
  matches everything, `[]` nothing).
It fails closed: unknown keys, operators or operand shapes raise FilterError naming the path.
Values and metadata keys are always bind parameters; column SQL comes from a whitelist.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

MAX_DEPTH = 5  # filter objects nested in AND/OR/NOT, the top-level object being level 1
MAX_CONDITIONS = 50  # fields, operators, metadata keys and logical list elements
MAX_JSON_DEPTH = 32  # of a metadata containment value
OPERATORS = frozenset({"gte", "lte", "gt", "lt", "ne", "in", "contains", "icontains"})
COMPARE = {"gte": ">=", "lte": "<=", "gt": ">", "lt": "<"}
Kind = Literal["text", "int", "float", "bool", "timestamp", "jsonb", "enum"]
CASTS = {"text": "text", "int": "bigint", "float": "double precision", "bool": "boolean",
         "timestamp": "timestamptz", "enum": "text"}
# JSON string values that compare as numbers. Bounded so the cast to numeric can never fail
# (numeric holds 131072 digits before the point and 16383 after); [0-9], not \d, because
# \d also matches non-ASCII digits that numeric rejects.
NUMERIC_RE = r"^[-+]?([0-9]{1,100}(\.[0-9]{0,100})?|\.[0-9]{1,100})([eE][-+]?[0-9]{1,4})?$"


class FilterError(ValueError):
    """An invalid filter; `path` names the offending part, e.g. `filters.AND[1].peer_id`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Column:
    """What a filter key may name. `sql` is trusted: it only ever comes from a schema."""

    sql: str
    kind: Kind
    enum_values: tuple[str, ...] = ()


FilterSchema = Mapping[str, Column]


@dataclass
class Params:
    """Bind parameters in order; `add` returns the placeholder (`$start+1` first)."""

    values: list[Any] = field(default_factory=list)
    start: int = 0

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${self.start + len(self.values)}"


def workspace_filters(a: str) -> dict[str, Column]:
    return {"id": Column(f"{a}.workspace_id", "text"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def peer_filters(a: str) -> dict[str, Column]:
    return {"id": Column(f"{a}.peer_id", "text"), "peer_id": Column(f"{a}.peer_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def session_filters(a: str) -> dict[str, Column]:
    return {"id": Column(f"{a}.session_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "active": Column(f"{a}.active", "bool"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def message_filters(a: str) -> dict[str, Column]:
    return {"id": Column(f"{a}.message_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "peer_id": Column(f"{a}.peer_id", "text"),
            "token_count": Column(f"{a}.token_count", "int"),
            "sequence": Column(f"{a}.seq", "int"),
            "created_at": Column(f"{a}.created_at", "timestamp"),
            "metadata": Column(f"{a}.metadata", "jsonb")}


def conclusion_filters(a: str) -> dict[str, Column]:
    return {"id": Column(f"{a}.conclusion_id", "text"),
            "workspace_id": Column(f"{a}.workspace_id", "text"),
            "observer_id": Column(f"{a}.observer_id", "text"),
            "observed_id": Column(f"{a}.observed_id", "text"),
            "session_id": Column(f"{a}.session_id", "text"),
            "level": Column(f"{a}.level", "enum",
                            ("explicit", "deductive", "inductive", "contradiction")),
            "times_derived": Column(f"{a}.times_derived", "int"),
            "created_at": Column(f"{a}.created_at", "timestamp")}


# Ready-made schemas with the aliases the store uses.
WORKSPACE_FILTERS: FilterSchema = MappingProxyType(workspace_filters("w"))
PEER_FILTERS: FilterSchema = MappingProxyType(peer_filters("p"))
SESSION_FILTERS: FilterSchema = MappingProxyType(session_filters("s"))
MESSAGE_FILTERS: FilterSchema = MappingProxyType(message_filters("m"))
CONCLUSION_FILTERS: FilterSchema = MappingProxyType(conclusion_filters("c"))


def session_boundary(column: str, placeholder: str, sessions: Sequence[str]) -> str:
    """The visibility boundary of a scoped read (a scope's sessions, a session allowlist):
    `column` is one of `sessions`, bound at `placeholder` (a text[]). An empty boundary
    admits nothing, and says so as a constant the planner folds (no scan: 3.8 ms -> 0 on a
    pair of 20k conclusions). Every read that takes a boundary compiles it here, or as the
    `session_id` `in` rule of a filter (`boundary_filter`), which compiles to the same test."""
    test = f"{column} = ANY({placeholder}::text[])"
    return test if sessions else f"FALSE AND {test}"


def boundary_filter(filters: dict[str, Any] | None,
                    sessions: Sequence[str] | None) -> dict[str, Any] | None:
    """`filters` narrowed to `sessions` (None: no boundary, `filters` as they are): a sibling
    rule (siblings are ANDed), so the caller's filter keeps its depth; wrapped in an AND only
    when the caller's filter has a `session_id` rule of its own."""
    if sessions is None:
        return filters
    rule: dict[str, Any] = {"session_id": {"in": list(sessions)}}
    if not filters:
        return rule
    if "session_id" not in filters:
        return {**filters, **rule}
    return {"AND": [filters, rule]}


def compile_filter(filters: Mapping[str, Any] | None, schema: FilterSchema, params: Params,
                   root: str = "filters") -> str:
    """A SQL boolean expression (`TRUE` for no filter); values go to `params`."""
    if filters is None:
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
        if not isinstance(value, Mapping):
            raise FilterError(path, "must be an object")
        parts = []
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key in ("AND", "OR", "NOT"):
                parts.append(self.logical(key, item, sub, depth))
            elif isinstance(key, str) and key in self.schema:
                parts.append(self.field(self.schema[key], item, sub))
            else:
                raise FilterError(sub, f"unknown field; allowed: {sorted(self.schema)}")
        return _all(parts)

    def logical(self, op: str, items: Any, path: str, depth: int) -> str:
        if not isinstance(items, list):
            raise FilterError(path, "must be a list of filters")
        compiled = []
        for i, item in enumerate(items):
            sub = f"{path}[{i}]"
            self.count(sub)
            compiled.append(self.node(item, sub, depth + 1))
        if op == "OR":
            return "(" + " OR ".join(compiled) + ")" if compiled else "FALSE"
        if op == "NOT":
            compiled = [f"({c} IS NOT TRUE)" for c in compiled]
        return _all(compiled)

    # -- plain columns ------------------------------------------------------------------

    def field(self, col: Column, value: Any, path: str) -> str:
        if col.kind == "jsonb":
            return self.metadata(col, value, path)
        if isinstance(value, Mapping):
            if not value:
                raise FilterError(path, "operator object is empty")
            return _all([self.op(col, str(o), v, f"{path}.{o}") for o, v in value.items()])
        self.count(path)
        if value == "*":
            return "TRUE"
        if value is None:
            return f"{col.sql} IS NULL"
        if isinstance(value, list):
            return self.in_list(col, value, path)
        return f"{col.sql} = {self.bind(col, value, path)}"

    def op(self, col: Column, op: str, value: Any, path: str) -> str:
        self.count(path)
        if op not in OPERATORS:
            raise FilterError(path, f"unknown operator; allowed: {sorted(OPERATORS)}")
        if op == "ne":
            if value is None:
                return f"{col.sql} IS NOT NULL"
            return f"{col.sql} IS DISTINCT FROM {self.bind(col, value, path)}"
        if op == "in":
            return self.in_list(col, value, path)
        if op in ("contains", "icontains"):
            if col.kind != "text":
                raise FilterError(path, f"{op} applies to text fields only")
            return f"{col.sql} {_like(op)} {self.params.add(_like_pattern(value, path))}::text"
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
            self.count(path)
            return "TRUE"
        if not isinstance(value, Mapping):
            raise FilterError(path, "metadata filters must be objects")
        parts = []
        for key, item in value.items():
            sub = f"{path}.{key}"
            self.count(sub)
            if not isinstance(key, str) or not key:
                raise FilterError(sub, "metadata keys must be non-empty strings")
            _check_text(key, sub)
            if isinstance(item, Mapping) and item and set(item) & OPERATORS:
                if not set(item) <= OPERATORS:
                    raise FilterError(sub, "mixes operators and plain keys")
                parts.append(self.meta_ops(col, key, item, sub))
            elif item == "*":
                parts.append(f"({col.sql} ? {self.params.add(key)}::text)")
            else:
                _check_json(item, sub, 0)
                doc = json.dumps({key: item}, allow_nan=False)
                parts.append(f"({col.sql} @> {self.params.add(doc)}::jsonb)")
        return _all(parts)

    def meta_ops(self, col: Column, key: str, ops: Mapping[str, Any], path: str) -> str:
        placeholder: list[str] = []  # the key is bound once, and only if used (PostgreSQL
        # cannot type a parameter that no expression mentions)

        def text() -> str:
            if not placeholder:
                placeholder.append(self.params.add(key))
            return f"({col.sql} ->> {placeholder[0]}::text)"

        def number() -> str:
            t = text()
            return (f"(CASE WHEN jsonb_typeof({col.sql} -> {placeholder[0]}::text) = 'number' "
                    f"THEN {t}::numeric WHEN {t} ~ '{NUMERIC_RE}' THEN {t}::numeric END)")

        parts = []
        for op, value in ops.items():
            sub = f"{path}.{op}"
            self.count(sub)
            if op == "ne" and value is None:
                parts.append(f"{text()} IS NOT NULL")
            elif op == "in":
                parts.append(self.meta_in(text, number, value, sub))
            elif op in ("contains", "icontains"):
                pattern = _like_pattern(value, sub)
                parts.append(f"{text()} {_like(op)} {self.params.add(pattern)}::text")
            else:
                sql_op = "IS DISTINCT FROM" if op == "ne" else COMPARE[op]
                if _is_number(value):
                    operand = _decimal(value, sub)
                    parts.append(f"{number()} {sql_op} {self.params.add(operand)}::numeric")
                else:
                    operand_text = _json_text(value, sub)
                    parts.append(f"{text()} {sql_op} {self.params.add(operand_text)}::text")
        return _all(parts)

    def meta_in(self, text: Callable[[], str], number: Callable[[], str], value: Any,
                path: str) -> str:
        if not isinstance(value, list):
            raise FilterError(path, "needs a list")
        if "*" in value:
            return "TRUE"
        if not value:
            return "FALSE"  # fail closed
        numbers: list[Decimal] = []
        texts: list[str] = []
        for i, item in enumerate(value):
            if _is_number(item):
                numbers.append(_decimal(item, f"{path}[{i}]"))
            else:
                texts.append(_json_text(item, f"{path}[{i}]"))
        alternatives = []
        if texts:
            alternatives.append(f"{text()} = ANY({self.params.add(texts)}::text[])")
        if numbers:
            alternatives.append(f"{number()} = ANY({self.params.add(numbers)}::numeric[])")
        return "(" + " OR ".join(alternatives) + ")"


def _all(parts: list[str]) -> str:
    if not parts:
        return "TRUE"
    return "(" + " AND ".join(parts) + ")"


def _like(op: str) -> str:
    return "LIKE" if op == "contains" else "ILIKE"


def _like_pattern(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise FilterError(path, "needs a string operand")
    _check_text(value, path)
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _check_text(value: str, path: str) -> None:
    """PostgreSQL text cannot hold NUL, and the wire needs valid UTF-8."""
    if "\x00" in value:
        raise FilterError(path, "text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FilterError(path, "text must be valid Unicode") from exc


def _check_json(value: Any, path: str, depth: int) -> None:
    """A value PostgreSQL accepts as jsonb (finite numbers, no NUL, not absurdly deep)."""
    if depth > MAX_JSON_DEPTH:
        raise FilterError(path, "value nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, int | float):
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            raise FilterError(path, "numbers must be finite")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(path, "object keys must be strings")
            _check_text(key, f"{path}.{key}")
            _check_json(item, f"{path}.{key}", depth + 1)
    else:
        raise FilterError(path, "not a JSON value")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimal(value: int | float, path: str) -> Decimal:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(path, "numbers must be finite")
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if result != 0 and abs(result.adjusted()) > 1000:
        raise FilterError(path, "number out of range")
    return result


def _json_text(value: Any, path: str) -> str:
    """A non-numeric operand as `->>` renders it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        _check_text(value, path)
        return value
    raise FilterError(path, "expected a string, number or boolean")


def _to_int(value: Any) -> int:
    if not _is_number(value):
        raise TypeError
    if not float(value).is_integer():
        raise ValueError
    result = int(value)
    if not -(2**63) <= result < 2**63:
        raise OverflowError
    return result


def _to_float(value: Any) -> float:
    if not _is_number(value):
        raise TypeError
    result = float(value)
    if not math.isfinite(result):
        raise ValueError
    return result


def _to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    if "\x00" in value:
        raise ValueError
    value.encode("utf-8")  # UnicodeEncodeError is a ValueError
    return value


def _to_timestamp(value: Any) -> datetime:
    """ISO 8601; naive means UTC. Normalised to UTC (which also rejects values that would
    leave the representable range once shifted)."""
    if not isinstance(value, str):
        raise TypeError
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _to_text, "enum": _to_text, "int": _to_int, "float": _to_float,
    "bool": _to_bool, "timestamp": _to_timestamp,
}
