"""The filter compiler without a database: the SQL and bind parameters it produces for every
form of the language, and the path named by every way of getting it wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from honcho_grpc.store.filters import (
    CONCLUSION_FILTERS,
    MAX_CONDITIONS,
    MESSAGE_FILTERS,
    NUMERIC_RE,
    PEER_FILTERS,
    SESSION_FILTERS,
    WORKSPACE_FILTERS,
    Column,
    FilterError,
    FilterSchema,
    Params,
    compile_filter,
    conclusion_filters,
    message_filters,
    peer_filters,
    session_filters,
    workspace_filters,
)

M = message_filters("m")
EXTRA: dict[str, Column] = {
    **M,
    "score": Column("m.score", "float"),
    "active": Column("m.active", "bool"),
    "level": Column("m.level", "enum", conclusion_filters("c")["level"].enum_values),
}


def sql(filters: Any, schema: FilterSchema = M, start: int = 0) -> tuple[str, list[Any]]:
    params = Params(start=start)
    return compile_filter(filters, schema, params), params.values


def error(filters: Any, schema: FilterSchema = M) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(filters, schema, Params())
    return info.value


def number_expr(key_ph: str) -> str:
    t = f"(m.metadata ->> {key_ph}::text)"
    return (f"(CASE WHEN jsonb_typeof(m.metadata -> {key_ph}::text) = 'number' "
            f"THEN {t}::numeric WHEN {t} ~ '{NUMERIC_RE}' THEN {t}::numeric END)")


# -- empty and plain fields -----------------------------------------------------------------


@pytest.mark.parametrize("filters", [None, {}])
def test_no_filter_is_true(filters: Any) -> None:
    assert sql(filters) == ("TRUE", [])


def test_equality_per_kind() -> None:
    assert sql({"peer_id": "alice"}) == ("(m.peer_id = $1::text)", ["alice"])
    assert sql({"token_count": 5.0}) == ("(m.token_count = $1::bigint)", [5])
    assert type(sql({"token_count": 5.0})[1][0]) is int
    assert sql({"sequence": 3}) == ("(m.seq = $1::bigint)", [3])
    assert sql({"score": 1.5}, EXTRA) == ("(m.score = $1::double precision)", [1.5])
    assert sql({"score": 2}, EXTRA)[1] == [2.0]
    assert sql({"active": False}, EXTRA) == ("(m.active = $1::boolean)", [False])
    assert sql({"level": "deductive"}, EXTRA) == ("(m.level = $1::text)", ["deductive"])
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert sql({"created_at": "2024-01-02T03:04:05Z"}) == (
        "(m.created_at = $1::timestamptz)", [when])


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),       # naive = UTC
    ("2024-01-02 03:04:05.250", datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
])
def test_timestamps_are_parsed_to_utc(text: str, expected: datetime) -> None:
    (value,) = sql({"created_at": {"gte": text}})[1]
    assert value == expected
    assert value.utcoffset() == timedelta(0)


def test_null_wildcard_and_bare_list() -> None:
    assert sql({"session_id": None}) == ("(m.session_id IS NULL)", [])
    assert sql({"session_id": "*"}) == ("(TRUE)", [])
    assert sql({"token_count": "*"}) == ("(TRUE)", [])
    assert sql({"peer_id": ["a", "b"]}) == ("(m.peer_id = ANY($1::text[]))", [["a", "b"]])
    assert sql({"token_count": [1, 2.0]}) == ("(m.token_count = ANY($1::bigint[]))", [[1, 2]])
    assert sql({"peer_id": []}) == ("(FALSE)", [])
    assert sql({"peer_id": ["a", "*"]}) == ("(TRUE)", [])


@pytest.mark.parametrize(("op", "sql_op"), [("gte", ">="), ("lte", "<="), ("gt", ">"),
                                            ("lt", "<")])
def test_comparisons(op: str, sql_op: str) -> None:
    assert sql({"token_count": {op: 10}}) == (f"((m.token_count {sql_op} $1::bigint))", [10])
    assert sql({"peer_id": {op: "m"}}) == (f"((m.peer_id {sql_op} $1::text))", ["m"])


def test_operators_in_one_object_are_anded() -> None:
    assert sql({"sequence": {"gte": 2, "lt": 4}}) == (
        "((m.seq >= $1::bigint AND m.seq < $2::bigint))", [2, 4])


def test_ne() -> None:
    assert sql({"peer_id": {"ne": "bob"}}) == ("((m.peer_id IS DISTINCT FROM $1::text))",
                                               ["bob"])
    assert sql({"peer_id": {"ne": None}}) == ("((m.peer_id IS NOT NULL))", [])


def test_in() -> None:
    assert sql({"peer_id": {"in": ["a"]}}) == ("((m.peer_id = ANY($1::text[])))", [["a"]])
    assert sql({"peer_id": {"in": []}}) == ("((FALSE))", [])            # fail closed
    assert sql({"peer_id": {"in": ["*"]}}) == ("((TRUE))", [])
    assert sql({"level": {"in": ["explicit"]}}, EXTRA)[1] == [["explicit"]]
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert sql({"created_at": {"in": ["2024-01-01T00:00:00"]}}) == (
        "((m.created_at = ANY($1::timestamptz[])))", [[when]])


@pytest.mark.parametrize(("op", "like"), [("contains", "LIKE"), ("icontains", "ILIKE")])
def test_contains_escapes_like_metacharacters(op: str, like: str) -> None:
    assert sql({"peer_id": {op: "ab"}}) == (f"((m.peer_id {like} $1::text))", ["%ab%"])
    assert sql({"peer_id": {op: "100%_a\\b"}})[1] == ["%100\\%\\_a\\\\b%"]


# -- logical --------------------------------------------------------------------------------


def test_siblings_are_anded() -> None:
    assert sql({"peer_id": "a", "session_id": "s"}) == (
        "(m.peer_id = $1::text AND m.session_id = $2::text)", ["a", "s"])


def test_and_or_not() -> None:
    assert sql({"AND": [{"peer_id": "a"}, {"sequence": 1}]}) == (
        "(((m.peer_id = $1::text) AND (m.seq = $2::bigint)))", ["a", 1])
    assert sql({"OR": [{"peer_id": "a"}, {"sequence": 1}]}) == (
        "(((m.peer_id = $1::text) OR (m.seq = $2::bigint)))", ["a", 1])
    # NOT: each element "IS NOT TRUE" (so NULLs are kept), the results ANDed.
    assert sql({"NOT": [{"peer_id": "a"}, {"sequence": 1}]}) == (
        "((((m.peer_id = $1::text) IS NOT TRUE) AND ((m.seq = $2::bigint) IS NOT TRUE)))",
        ["a", 1])


def test_empty_logical_lists() -> None:
    assert sql({"AND": []}) == ("(TRUE)", [])
    assert sql({"NOT": []}) == ("(TRUE)", [])
    assert sql({"OR": []}) == ("(FALSE)", [])
    assert sql({"OR": [{}]}) == ("((TRUE))", [])


def nest(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    node = leaf
    for _ in range(levels):
        node = {"AND": [node]}
    return node


def test_depth_five_is_allowed_six_is_not() -> None:
    compiled, values = sql(nest(4, {"peer_id": "a"}))
    assert compiled == "(((((((((m.peer_id = $1::text)))))))))"
    assert values == ["a"]
    assert error(nest(5, {"peer_id": "a"})).path == "filters" + ".AND[0]" * 5


def test_mixed_nesting() -> None:
    f = {"OR": [{"AND": [{"OR": [{"NOT": [{"peer_id": "bob"}]}]}]}], "sequence": 1}
    assert sql(f) == ("((((((((((m.peer_id = $1::text) IS NOT TRUE)))))))) "
                      "AND m.seq = $2::bigint)", ["bob", 1])


def test_condition_limit() -> None:
    ok = {"OR": [{"peer_id": str(i)} for i in range(MAX_CONDITIONS // 2)]}
    assert len(sql(ok)[1]) == MAX_CONDITIONS // 2
    too_many = {"OR": [{"peer_id": str(i)} for i in range(MAX_CONDITIONS // 2 + 1)]}
    assert error(too_many).path == f"filters.OR[{MAX_CONDITIONS // 2}]"
    # Empty objects count too: no amount of padding is free.
    assert error({"AND": [{}] * (MAX_CONDITIONS + 1)}).path == f"filters.AND[{MAX_CONDITIONS}]"
    meta = {"metadata": {f"k{i}": 1 for i in range(MAX_CONDITIONS + 1)}}
    assert error(meta).path == f"filters.metadata.k{MAX_CONDITIONS}"


def test_params_start_after_an_offset() -> None:
    assert sql({"peer_id": "a", "sequence": 2}, start=2) == (
        "(m.peer_id = $3::text AND m.seq = $4::bigint)", ["a", 2])


def test_custom_root_path() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter({"x": 1}, M, Params(), root="request.filters")
    assert info.value.path == "request.filters.x"
    assert "request.filters.x" in str(info.value)
    assert isinstance(info.value, ValueError)


# -- metadata -------------------------------------------------------------------------------


def test_metadata_containment() -> None:
    assert sql({"metadata": {"tag": "x", "n": 3}}) == (
        "(((m.metadata @> $1::jsonb) AND (m.metadata @> $2::jsonb)))",
        ['{"tag": "x"}', '{"n": 3}'])
    assert sql({"metadata": {"nested": {"k": ["v"]}}})[1] == ['{"nested": {"k": ["v"]}}']
    assert sql({"metadata": {"tags": ["a", "b"]}})[1] == ['{"tags": ["a", "b"]}']
    assert sql({"metadata": {"k": None}})[1] == ['{"k": null}']
    assert sql({"metadata": {"k": {}}})[1] == ['{"k": {}}']
    assert sql({"metadata": {}}) == ("(TRUE)", [])
    assert sql({"metadata": "*"}) == ("(TRUE)", [])


def test_metadata_key_wildcard_means_present() -> None:
    assert sql({"metadata": {"tag": "*"}}) == ("(((m.metadata ? $1::text)))", ["tag"])


@pytest.mark.parametrize(("op", "sql_op"), [("gte", ">="), ("lte", "<="), ("gt", ">"),
                                            ("lt", "<"), ("ne", "IS DISTINCT FROM")])
def test_metadata_numeric_comparison(op: str, sql_op: str) -> None:
    compiled, values = sql({"metadata": {"age": {op: 30.0}}})
    assert compiled == f"((({number_expr('$1')} {sql_op} $2::numeric)))"
    assert values == ["age", Decimal("30.0")]


def test_metadata_text_and_bool_comparison() -> None:
    assert sql({"metadata": {"tag": {"gte": "m"}}}) == (
        "((((m.metadata ->> $1::text) >= $2::text)))", ["tag", "m"])
    assert sql({"metadata": {"vip": {"ne": True}}}) == (
        "((((m.metadata ->> $1::text) IS DISTINCT FROM $2::text)))", ["vip", "true"])
    assert sql({"metadata": {"vip": {"ne": False}}})[1] == ["vip", "false"]
    assert sql({"metadata": {"tag": {"ne": None}}}) == (
        "((((m.metadata ->> $1::text) IS NOT NULL)))", ["tag"])


def test_metadata_key_is_bound_once_per_key() -> None:
    compiled, values = sql({"metadata": {"age": {"gte": 1, "lt": 9}}})
    assert values == ["age", Decimal(1), Decimal(9)]
    assert compiled == (f"((({number_expr('$1')} >= $2::numeric AND "
                        f"{number_expr('$1')} < $3::numeric)))")


def test_metadata_in() -> None:
    assert sql({"metadata": {"tag": {"in": ["a", True]}}}) == (
        "(((((m.metadata ->> $1::text) = ANY($2::text[])))))", ["tag", ["a", "true"]])
    compiled, values = sql({"metadata": {"n": {"in": ["a", 1, 2.5]}}})
    assert compiled == ("(((((m.metadata ->> $1::text) = ANY($2::text[]) OR "
                        f"{number_expr('$1')} = ANY($3::numeric[])))))")
    assert values == ["n", ["a"], [Decimal(1), Decimal("2.5")]]
    # Fail closed, wildcard, and no unused parameter for the key in either case.
    assert sql({"metadata": {"tag": {"in": []}}}) == ("(((FALSE)))", [])
    assert sql({"metadata": {"tag": {"in": ["x", "*"]}}}) == ("(((TRUE)))", [])


@pytest.mark.parametrize(("op", "like"), [("contains", "LIKE"), ("icontains", "ILIKE")])
def test_metadata_contains(op: str, like: str) -> None:
    assert sql({"metadata": {"tag": {op: "5%"}}}) == (
        f"((((m.metadata ->> $1::text) {like} $2::text)))", ["tag", "%5\\%%"])


# -- injection ------------------------------------------------------------------------------


EVIL = "a'; DROP TABLE x;--"


def test_metadata_keys_and_values_stay_parameters() -> None:
    for f in ({"metadata": {EVIL: 1}}, {"metadata": {EVIL: {"gte": 1}}},
              {"metadata": {EVIL: "*"}}, {"metadata": {"k": {"in": [EVIL]}}},
              {"metadata": {"k": {"icontains": EVIL}}}, {"metadata": {"k": EVIL}},
              {"peer_id": EVIL}, {"peer_id": {"in": [EVIL]}}, {"peer_id": {"contains": EVIL}}):
        compiled, values = sql(f)
        assert "DROP" not in compiled
        assert any("DROP" in str(v) for v in values)


def test_unknown_keys_and_operators_are_rejected() -> None:
    assert error({"id; drop table x": 1}).path == "filters.id; drop table x"
    assert error({"m.peer_id": 1}).path == "filters.m.peer_id"
    assert error({"peer_id": {"gte; DROP": 1}}).path == "filters.peer_id.gte; DROP"
    assert error({"metadata": {"k": {"gte": 1, "); DROP": 1}}}).path == "filters.metadata.k"


# -- errors ---------------------------------------------------------------------------------


ERRORS: list[tuple[Any, str]] = [
    ([{"peer_id": "a"}], "filters"),
    ("peer_id", "filters"),
    ({"nope": 1}, "filters.nope"),
    ({"PEER_ID": 1}, "filters.PEER_ID"),
    ({"and": []}, "filters.and"),
    ({"AND": {"peer_id": "a"}}, "filters.AND"),
    ({"OR": "x"}, "filters.OR"),
    ({"NOT": None}, "filters.NOT"),
    ({"AND": ["x"]}, "filters.AND[0]"),
    ({"OR": [{"peer_id": "a"}, 3]}, "filters.OR[1]"),
    ({"NOT": [{"AND": [{"bad": 1}]}]}, "filters.NOT[0].AND[0].bad"),
    ({"peer_id": {}}, "filters.peer_id"),
    ({"peer_id": {"regex": "a"}}, "filters.peer_id.regex"),
    ({"peer_id": {"eq": "a"}}, "filters.peer_id.eq"),
    ({"peer_id": 1}, "filters.peer_id"),
    ({"peer_id": True}, "filters.peer_id"),
    ({"peer_id": "a\x00b"}, "filters.peer_id"),
    ({"peer_id": "\ud800"}, "filters.peer_id"),
    ({"peer_id": {"gte": None}}, "filters.peer_id.gte"),
    ({"peer_id": {"ne": ["a"]}}, "filters.peer_id.ne"),
    ({"peer_id": {"in": "a"}}, "filters.peer_id.in"),
    ({"peer_id": {"in": ["a", 2]}}, "filters.peer_id.in[1]"),
    ({"peer_id": ["a", None]}, "filters.peer_id[1]"),
    ({"peer_id": {"contains": 1}}, "filters.peer_id.contains"),
    ({"peer_id": {"icontains": None}}, "filters.peer_id.icontains"),
    ({"peer_id": {"contains": "a\x00"}}, "filters.peer_id.contains"),
    ({"token_count": "1"}, "filters.token_count"),
    ({"token_count": 1.5}, "filters.token_count"),
    ({"token_count": True}, "filters.token_count"),
    ({"token_count": float("inf")}, "filters.token_count"),
    ({"token_count": float("nan")}, "filters.token_count"),
    ({"token_count": 1e19}, "filters.token_count"),
    ({"token_count": {"gt": "1"}}, "filters.token_count.gt"),
    ({"token_count": {"contains": "1"}}, "filters.token_count.contains"),
    ({"token_count": {"in": [1, 2.5]}}, "filters.token_count.in[1]"),
    ({"created_at": "yesterday"}, "filters.created_at"),
    ({"created_at": 1700000000}, "filters.created_at"),
    ({"created_at": {"gte": "2024-13-01"}}, "filters.created_at.gte"),
    ({"created_at": {"lt": "9999-12-31T23:59:59-14:00"}}, "filters.created_at.lt"),
    ({"created_at": {"icontains": "2024"}}, "filters.created_at.icontains"),
    ({"metadata": "x"}, "filters.metadata"),
    ({"metadata": ["a"]}, "filters.metadata"),
    ({"metadata": None}, "filters.metadata"),
    ({"metadata": {"": 1}}, "filters.metadata."),
    ({"metadata": {"a\x00": 1}}, "filters.metadata.a\x00"),
    ({"metadata": {"a": {"gte": 1, "b": 2}}}, "filters.metadata.a"),
    ({"metadata": {"a": {"gte": None}}}, "filters.metadata.a.gte"),
    ({"metadata": {"a": {"gte": [1]}}}, "filters.metadata.a.gte"),
    ({"metadata": {"a": {"lt": {"x": 1}}}}, "filters.metadata.a.lt"),
    ({"metadata": {"a": {"gt": float("inf")}}}, "filters.metadata.a.gt"),
    ({"metadata": {"a": {"in": "x"}}}, "filters.metadata.a.in"),
    ({"metadata": {"a": {"in": ["x", None]}}}, "filters.metadata.a.in[1]"),
    ({"metadata": {"a": {"in": [float("nan")]}}}, "filters.metadata.a.in[0]"),
    ({"metadata": {"a": {"contains": 3}}}, "filters.metadata.a.contains"),
    ({"metadata": {"a": float("nan")}}, "filters.metadata.a"),
    ({"metadata": {"a": [1, float("inf")]}}, "filters.metadata.a[1]"),
    ({"metadata": {"a": {"b": "x\x00"}}}, "filters.metadata.a.b"),
    ({"metadata": {"a": {"b\x00": 1}}}, "filters.metadata.a.b\x00"),
    ({"metadata": {"a": {1: 1}}}, "filters.metadata.a"),
    ({"metadata": {"a": {1, 2}}}, "filters.metadata.a"),
    ({"AND": [{"peer_id": "a"}, {"metadata": {"age": {"gte": None}}}]},
     "filters.AND[1].metadata.age.gte"),
]


@pytest.mark.parametrize(("filters", "path"), ERRORS)
def test_errors_name_the_path(filters: Any, path: str) -> None:
    assert error(filters).path == path


def test_non_string_metadata_key() -> None:
    assert error({"metadata": {1: "x"}}).path == "filters.metadata.1"


def test_deep_containment_value() -> None:
    value: Any = "x"
    for _ in range(40):
        value = {"k": value}
    assert error({"metadata": {"a": value}}).path.startswith("filters.metadata.a.k.k")


SCHEMA_ERRORS: list[tuple[Any, FilterSchema, str]] = [
    ({"level": "bogus"}, CONCLUSION_FILTERS, "filters.level"),
    ({"level": {"in": ["explicit", "x"]}}, CONCLUSION_FILTERS, "filters.level.in[1]"),
    ({"level": {"ne": "x"}}, CONCLUSION_FILTERS, "filters.level.ne"),
    ({"level": {"gte": "explicit"}}, CONCLUSION_FILTERS, "filters.level.gte"),
    ({"level": {"contains": "ex"}}, CONCLUSION_FILTERS, "filters.level.contains"),
    ({"metadata": {}}, CONCLUSION_FILTERS, "filters.metadata"),
    ({"active": "yes"}, SESSION_FILTERS, "filters.active"),
    ({"active": 1}, SESSION_FILTERS, "filters.active"),
    ({"active": {"gt": True}}, SESSION_FILTERS, "filters.active.gt"),
    ({"score": "1"}, EXTRA, "filters.score"),
    ({"score": True}, EXTRA, "filters.score"),
    ({"score": float("nan")}, EXTRA, "filters.score"),
    ({"peer_id": "a"}, WORKSPACE_FILTERS, "filters.peer_id"),
]


@pytest.mark.parametrize(("filters", "schema", "path"), SCHEMA_ERRORS)
def test_errors_per_schema(filters: Any, schema: FilterSchema, path: str) -> None:
    assert error(filters, schema).path == path


# -- schemas --------------------------------------------------------------------------------


def test_schemas() -> None:
    assert {k: (c.sql, c.kind) for k, c in workspace_filters("x").items()} == {
        "id": ("x.workspace_id", "text"), "created_at": ("x.created_at", "timestamp"),
        "metadata": ("x.metadata", "jsonb")}
    assert peer_filters("p")["id"].sql == "p.peer_id"
    assert set(peer_filters("p")) >= {"id", "workspace_id", "created_at", "metadata"}
    assert session_filters("s")["id"].sql == "s.session_id"
    assert session_filters("s")["active"] == Column("s.active", "bool")
    assert set(session_filters("s")) >= {"id", "workspace_id", "created_at", "metadata"}
    assert {k: (c.sql, c.kind) for k, c in message_filters("m").items()} == {
        "id": ("m.message_id", "text"), "workspace_id": ("m.workspace_id", "text"),
        "session_id": ("m.session_id", "text"), "peer_id": ("m.peer_id", "text"),
        "token_count": ("m.token_count", "int"), "sequence": ("m.seq", "int"),
        "created_at": ("m.created_at", "timestamp"), "metadata": ("m.metadata", "jsonb")}
    c = conclusion_filters("c")
    assert {k: (col.sql, col.kind) for k, col in c.items()} == {
        "id": ("c.conclusion_id", "text"), "workspace_id": ("c.workspace_id", "text"),
        "observer_id": ("c.observer_id", "text"), "observed_id": ("c.observed_id", "text"),
        "session_id": ("c.session_id", "text"), "level": ("c.level", "enum"),
        "times_derived": ("c.times_derived", "int"), "created_at": ("c.created_at", "timestamp")}
    assert c["level"].enum_values == ("explicit", "deductive", "inductive", "contradiction")


def test_ready_made_schemas_are_read_only() -> None:
    assert MESSAGE_FILTERS["id"].sql == "m.message_id"
    assert WORKSPACE_FILTERS["id"].sql == "w.workspace_id"
    assert PEER_FILTERS["id"].sql == "p.peer_id"
    assert SESSION_FILTERS["id"].sql == "s.session_id"
    assert CONCLUSION_FILTERS["id"].sql == "c.conclusion_id"
    with pytest.raises(TypeError):
        MESSAGE_FILTERS["evil"] = Column("1; DROP TABLE x", "text")  # type: ignore[index]


def test_conclusion_level() -> None:
    assert sql({"level": ["explicit", "inductive"]}, CONCLUSION_FILTERS) == (
        "(c.level = ANY($1::text[]))", [["explicit", "inductive"]])
    assert sql({"times_derived": {"gte": 2}}, CONCLUSION_FILTERS) == (
        "((c.times_derived >= $1::bigint))", [2])


# -- property -------------------------------------------------------------------------------

# Strings carry a marker so we can check that no operand ever reaches the SQL text.
MARK = "§"
OPS = ["gte", "lte", "gt", "lt", "ne", "in", "contains", "icontains"]
safe_texts = st.text(alphabet=st.sampled_from(["a", "Z", "'", ";", "%", "_", "\\", " ", "*",
                                               "1", ".", "-", "e", "é", '"']),
                     max_size=6).map(lambda s: MARK + s)
texts = st.one_of(safe_texts, st.just(MARK + "\x00"), st.just("\ud800"))
numbers = st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=False,
                                                            allow_infinity=False),
                    st.sampled_from([0.0, 1.0, -3.0, 30.0, 2.5]))
garbage_scalars = st.one_of(st.none(), st.booleans(), texts, st.just("*"), numbers,
                            st.floats(), st.sampled_from(["2024-01-01", "explicit", "1e999"]))
garbage = st.recursive(garbage_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(texts, st.sampled_from([*OPS, "k"])), inner, max_size=3)),
    max_leaves=6)
timestamps = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.sampled_from(["2024-01-01", "2023-11-16T02:00:00Z", "not a date"]))
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "text": safe_texts,
    "int": st.one_of(st.integers(-(2**63), 2**63), st.integers(-5, 5).map(float)),
    "float": numbers,
    "bool": st.booleans(),
    "timestamp": timestamps,
    "enum": st.sampled_from(["explicit", "deductive", "contradiction", "bogus"]),
}


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid`, and one time in ten something arbitrary instead."""
    return st.integers(0, 9).flatmap(lambda n: garbage if n == 0 else valid)


def field_values(kind: str) -> st.SearchStrategy[Any]:
    if kind == "jsonb":
        operand = st.one_of(numbers, safe_texts, st.booleans(), st.none(),
                            st.lists(st.one_of(numbers, safe_texts, st.booleans(),
                                               st.just("*")), max_size=3))
        per_key = st.one_of(mostly(garbage.filter(lambda v: v != {})), st.just("*"),
                            st.dictionaries(st.sampled_from(OPS), operand, min_size=1,
                                            max_size=3))
        keys = st.one_of(safe_texts, st.sampled_from(["age", "tag", "a'; DROP TABLE x;--"]))
        return mostly(st.one_of(st.dictionaries(keys, per_key, max_size=3), st.just("*")))
    scalar = SCALARS[kind]
    operand = st.one_of(scalar, st.none(), st.lists(st.one_of(scalar, st.just("*")),
                                                    max_size=3))
    ops = st.dictionaries(st.sampled_from(OPS), operand, min_size=1, max_size=3)
    return mostly(st.one_of(scalar, st.none(), st.just("*"), st.lists(scalar, max_size=3), ops))


def filter_objects(schema: FilterSchema) -> st.SearchStrategy[Any]:
    """Mostly well-formed filters over `schema`, with a share of every kind of mistake."""
    fields = {key: field_values(col.kind) for key, col in schema.items()}
    base = mostly(st.fixed_dictionaries({}, optional=fields))

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        lists = mostly(st.lists(inner, max_size=3))
        return st.fixed_dictionaries({}, optional={
            **fields, "AND": lists, "OR": lists, "NOT": lists})

    return st.recursive(base, extend, max_leaves=10)


def check_output(compiled: str, values: list[Any]) -> None:
    assert isinstance(compiled, str)
    used = {int(n) for n in re.findall(r"\$(\d+)", compiled)}
    assert used == set(range(1, len(values) + 1))  # every parameter used, none missing
    assert MARK not in compiled
    assert "\x00" not in compiled
    assert "'" not in compiled.replace(f"'{NUMERIC_RE}'", "").replace("'number'", "")
    assert compiled.count("(") == compiled.count(")")


@settings(max_examples=400, deadline=None)
@given(filter_objects(EXTRA))
def test_random_filters_compile_or_fail_cleanly(filters: Any) -> None:
    params = Params()
    try:
        compiled = compile_filter(filters, EXTRA, params)
    except FilterError as exc:
        assert exc.path.startswith("filters")
        event("rejected")
        return
    event("compiled" if params.values else "compiled without parameters")
    check_output(compiled, params.values)


def test_boundary_filter_keeps_the_callers_depth() -> None:
    from honcho_grpc.store.filters import boundary_filter

    assert boundary_filter(None, None) is None
    assert boundary_filter({"peer_id": "a"}, None) == {"peer_id": "a"}
    assert boundary_filter(None, ["s1"]) == {"session_id": {"in": ["s1"]}}
    assert boundary_filter({"peer_id": "a"}, []) == {"peer_id": "a", "session_id": {"in": []}}
    assert boundary_filter({"session_id": "s2"}, ["s1"]) == {
        "AND": [{"session_id": "s2"}, {"session_id": {"in": ["s1"]}}]}
