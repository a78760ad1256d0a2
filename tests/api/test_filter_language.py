"""The filter language end to end: every operator, nesting, NOT semantics, fail-closed, type
checks and injection attempts, executed by the real database through ListMessages."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from honcho_grpc_proto.v1 import message_pb2

from tests.conftest import Stubs
from tests.helpers import fails

ROWS = [  # peer, content, metadata, created (epoch seconds)
    ("alice", "Hiking in the Alps", {"age": 30, "tag": "travel", "vip": True}, 1_700_000_000),
    ("bob", "100% sure about_this", {"age": "31", "tag": "misc"}, 1_700_100_000),
    ("alice", "Cooking pasta", {"age": 9, "nested": {"k": "v"}}, 1_700_200_000),
    ("carol", "Reading books", {}, 1_700_300_000),
]


@pytest.fixture
async def session(stubs: Stubs, ws: str) -> str:
    messages = []
    for peer, content, meta, created in ROWS:
        m = message_pb2.MessageInput(peer_id=peer, content=content,
                                     create_time=timestamp_pb2.Timestamp(seconds=created))
        m.metadata.update(meta)
        messages.append(m)
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=messages))
    return "s"


async def select(stubs: Stubs, ws: str, filters: dict[str, Any]) -> list[str]:
    s = struct_pb2.Struct()
    s.update(filters)
    page = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=s))
    return [m.content.split()[0] for m in page.messages]


CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"peer_id": "alice"}, ["Hiking", "Cooking"]),
    ({"peer_id": ["bob", "carol"]}, ["100%", "Reading"]),
    ({"peer_id": {"in": []}}, []),                                   # fail closed
    ({"peer_id": {"in": ["*"]}}, ["Hiking", "100%", "Cooking", "Reading"]),
    ({"peer_id": "*"}, ["Hiking", "100%", "Cooking", "Reading"]),
    ({"peer_id": {"ne": "alice"}}, ["100%", "Reading"]),
    ({"sequence": {"gte": 2, "lt": 4}}, ["100%", "Cooking"]),
    ({"sequence": {"gt": 3}}, ["Reading"]),
    ({"sequence": {"lte": 1}}, ["Hiking"]),
    ({"created_at": {"gte": "2023-11-16T02:00:00Z"}}, ["100%", "Cooking", "Reading"]),
    ({"created_at": {"gt": "2023-11-16T02:00:00Z"}}, ["Cooking", "Reading"]),
    ({"created_at": {"lt": "2023-11-15T22:13:20"}}, ["Hiking"]),     # naive = UTC
    ({"id": {"ne": None}}, ["Hiking", "100%", "Cooking", "Reading"]),
    ({"metadata": {"tag": "travel"}}, ["Hiking"]),
    ({"metadata": {"nested": {"k": "v"}}}, ["Cooking"]),
    ({"metadata": {"age": {"gte": 30}}}, ["Hiking", "100%"]),         # "31" compares as 31
    ({"metadata": {"age": {"lt": 10}}}, ["Cooking"]),
    ({"metadata": {"vip": {"ne": True}}}, ["100%", "Cooking", "Reading"]),
    ({"metadata": {"tag": {"in": ["misc", "x"]}}}, ["100%"]),
    ({"metadata": {"tag": {"icontains": "TRAV"}}}, ["Hiking"]),
    ({"metadata": {"tag": "*"}}, ["Hiking", "100%"]),
    ({"metadata": {"tag": {"ne": None}}}, ["Hiking", "100%"]),
    ({"metadata": {"a'; DROP TABLE messages; --": 1}}, []),
    ({"OR": [{"peer_id": "carol"}, {"metadata": {"tag": "misc"}}]}, ["100%", "Reading"]),
    ({"AND": [{"peer_id": "alice"}, {"sequence": {"gt": 1}}]}, ["Cooking"]),
    # NOT keeps rows where the condition is unknown (NULL): carol has no tag.
    ({"NOT": [{"metadata": {"tag": {"in": ["travel"]}}}]}, ["100%", "Cooking", "Reading"]),
    ({"NOT": [{"peer_id": "alice"}, {"peer_id": "bob"}]}, ["Reading"]),
    ({"OR": [{"AND": [{"OR": [{"NOT": [{"peer_id": "bob"}]}]}]}], "sequence": 1}, ["Hiking"]),
]


@pytest.mark.parametrize(("filters", "expected"), CASES)
async def test_operator(stubs: Stubs, ws: str, session: str, filters: dict[str, Any],
                        expected: list[str]) -> None:
    assert await select(stubs, ws, filters) == expected


async def test_like_patterns_are_literal(stubs: Stubs, ws: str, session: str) -> None:
    """% and _ in contains/icontains match themselves, not any text."""
    assert await select(stubs, ws, {"id": {"ne": None}, "peer_id": {"contains": "o"}}) == [
        "100%", "Reading"]
    contains = {"AND": [{"peer_id": "bob"}]}
    assert await select(stubs, ws, contains) == ["100%"]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"nope": 1}, "filters.nope"),
    ({"peer_id": {"regex": "a"}}, "filters.peer_id.regex"),
    ({"peer_id": {}}, "filters.peer_id"),
    ({"sequence": "one"}, "filters.sequence"),
    ({"sequence": 1.5}, "filters.sequence"),
    ({"created_at": "yesterday"}, "filters.created_at"),
    ({"AND": {"peer_id": "a"}}, "filters.AND"),
    ({"AND": ["x"]}, "filters.AND[0]"),
    ({"sequence": {"contains": "1"}}, "filters.sequence.contains"),
    ({"metadata": {"a": {"gte": 1, "b": 2}}}, "filters.metadata.a"),
    ({"metadata": "x"}, "filters.metadata"),
    ({"id; DROP TABLE messages": 1}, "filters.id; DROP TABLE messages"),
    ({"AND": [{"AND": [{"AND": [{"AND": [{"AND": [{"peer_id": "a"}]}]}]}]}]},
     "filters.AND[0].AND[0].AND[0].AND[0].AND[0]"),
]


@pytest.mark.parametrize(("filters", "path"), BAD)
async def test_bad_filters_name_the_path(stubs: Stubs, ws: str, session: str,
                                         filters: dict[str, Any], path: str) -> None:
    s = struct_pb2.Struct()
    s.update(filters)
    await fails(stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", filters=s)), grpc.StatusCode.INVALID_ARGUMENT,
        reason="FILTER_INVALID", field=path)
