"""JSON repair for sloppy model output, and the JSON-Schema subset validator."""

from __future__ import annotations

from typing import Any

import pytest

from honcho_grpc.providers.llm.jsonrepair import extract_json
from honcho_grpc.providers.llm.schema import validate


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Here you go: {"a": [1, 2]} -- hope that helps {', {"a": [1, 2]}),
    ("{'a': 'it\\'s', \"b\": \"say \\\"hi\\\"\"}", {"a": "it's", "b": 'say "hi"'}),
    ("{a: True, b: None, c: False}", {"a": True, "b": None, "c": False}),
    ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
    ('{"a": 1, // the count\n "b": /* two */ 2}', {"a": 1, "b": 2}),
    ('{"a": ["x", {"b": "cut off', {"a": ["x", {"b": "cut off"}]}),
    ('{"a": "line\nbreak"}', {"a": "line\nbreak"}),
    ("See [1] for details: {\"a\": 1}", {"a": 1}),
])
def test_extracts_and_repairs(text: str, value: Any) -> None:
    assert extract_json(text, dict) == value


def test_arrays_when_any_value_is_wanted() -> None:
    assert extract_json("The list: [1, 2, 3].") == [1, 2, 3]


@pytest.mark.parametrize("text", ["", "no json here", "{not: valid: at all}", "[1, 2]"])
def test_rejects_text_without_an_object(text: str) -> None:
    with pytest.raises(ValueError):
        extract_json(text, dict)


SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["name", "tags"], "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": ["integer", "null"], "minimum": 0},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "maxItems": 2},
        "level": {"enum": ["explicit", "deductive"]},
        "ok": {"type": "boolean"},
        "score": {"anyOf": [{"type": "number"}, {"type": "string"}]},
    },
    "$defs": {"tag": {"type": "string", "pattern": "^[a-z]+$"}},
}


def test_valid_instances_pass() -> None:
    assert validate({"name": "alice", "tags": ["a"], "age": None, "level": "explicit",
                     "ok": True, "score": 1.5}, SCHEMA) == []


@pytest.mark.parametrize(("instance", "problem"), [
    ({"tags": []}, "missing required property 'name'"),
    ({"name": "", "tags": []}, "$.name: shorter than 1"),
    ({"name": "a", "tags": [], "age": 1.5}, "$.age: expected integer or null, got number"),
    ({"name": "a", "tags": [], "age": -1}, "$.age: below the minimum 0"),
    ({"name": "a", "tags": ["A"]}, "$.tags[0]: does not match"),
    ({"name": "a", "tags": ["a", "b", "c"]}, "$.tags: more than 2 items"),
    ({"name": "a", "tags": [], "level": "guess"}, "$.level: 'guess' is not one of"),
    ({"name": "a", "tags": [], "ok": 1}, "$.ok: expected boolean, got integer"),
    ({"name": "a", "tags": [], "score": None}, "$.score: matches none of anyOf"),
    ({"name": "a", "tags": [], "extra": 1}, "unexpected property 'extra'"),
    ([], "$: expected object, got array"),
])
def test_violations_are_reported_with_their_path(instance: Any, problem: str) -> None:
    assert any(problem in error for error in validate(instance, SCHEMA))


def test_booleans_are_not_numbers_nor_equal_to_them() -> None:
    assert validate(True, {"type": "integer"}) != []
    assert validate(1, {"enum": [True]}) != []
    assert validate(True, {"const": True}) == []
