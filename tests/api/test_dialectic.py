"""Chat and StreamChat with the offline `local` provider: retrieval-composed answers streamed
word by word, one completion with usage and the conclusions used, abstention on an empty
memory, JSON answers, cancellation and errors as statuses."""

from __future__ import annotations

import asyncio
import json

import grpc
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import dialectic_pb2 as pb
from honcho_grpc_proto.v1 import message_pb2, peer_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.domain.dialectic import Answer, Gathered, Question, llm_answer
from honcho_grpc.domain.dialectic_tools import Toolbox, viewpoint
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.providers.llm import LocalProvider
from tests.conftest import Stubs
from tests.helpers import fails


async def seed(stubs: Stubs, db: Database, ws: str) -> None:
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id="alice", content="I work as a nurse in Lyon"),
            message_pb2.MessageInput(peer_id="bob", content="Cool, I play the cello")]))
    await db.pool.execute(
        "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
        "session_id, content) VALUES ($1, 'c-nurse', 'alice', 'alice', 's', "
        "'alice works as a nurse in Lyon')", ws)


def query(ws: str, text: str, **kw: object) -> pb.ChatQuery:
    return pb.ChatQuery(workspace_id=ws, peer_id="alice", query=text, **kw)  # type: ignore[arg-type]


async def test_stream_chat_deltas_then_one_completion(stubs: Stubs, db: Database,
                                                      ws: str) -> None:
    await seed(stubs, db, ws)
    deltas, completions = [], []
    async for event in stubs.dialectic.StreamChat(pb.StreamChatRequest(
            query=query(ws, "What is alice's job as a nurse?"))):
        if event.HasField("delta"):
            assert not completions, "no delta after the completion"
            deltas.append(event.delta.content)
        else:
            completions.append(event.completion)
    text = "".join(deltas)
    assert len(deltas) > 3 and "nurse" in text
    assert len(completions) == 1
    done = completions[0]
    assert done.finish_reason == pb.FINISH_REASON_STOP
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    assert "c-nurse" in done.conclusion_ids
    unary = await stubs.dialectic.Chat(pb.ChatRequest(
        query=query(ws, "What is alice's job as a nurse?")))
    assert unary.content == text


async def test_abstains_when_nothing_is_known(stubs: Stubs, ws: str) -> None:
    await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                      peer_id="alice"))
    r = await stubs.dialectic.Chat(pb.ChatRequest(query=query(
        ws, "What is her favourite film?", reasoning_level=pb.REASONING_LEVEL_MINIMAL)))
    assert "don't have information" in r.content
    assert list(r.conclusion_ids) == []


async def test_json_answer_matches_the_schema(stubs: Stubs, db: Database, ws: str) -> None:
    await seed(stubs, db, ws)
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"job": {"type": "string"},
                                                    "confident": {"type": "boolean"}},
                   "required": ["job"]})
    r = await stubs.dialectic.Chat(pb.ChatRequest(query=query(
        ws, "Which job as a nurse?", response_format=schema)))
    answer = json.loads(r.content)
    assert isinstance(answer["job"], str) and "nurse" in answer["job"]
    assert isinstance(answer["confident"], bool)


async def test_response_formats_that_are_no_schema_are_refused(stubs: Stubs, db: Database,
                                                              ws: str) -> None:
    """Checked against the meta-schema before any model runs, for every provider."""
    await seed(stubs, db, ws)
    for bad in ({"type": "object", "properties": ["job"]},
                {"type": "object", "properties": {"job": {"type": "strin"}}},
                {"type": "object", "required": "job"},
                {"type": "object", "properties": {"n": {"minimum": "zero"}}},
                {"type": "array", "items": {}},
                {"$schema": 5}, {"type": "object", "$schema": {"a": 1}}):  # crashed the lookup
        schema = struct_pb2.Struct()
        schema.update(bad)
        for call in (stubs.dialectic.Chat(pb.ChatRequest(query=query(
                        ws, "Which job?", response_format=schema))),
                     stubs.dialectic.StreamChat(pb.StreamChatRequest(query=query(
                        ws, "Which job?", response_format=schema))).read()):
            await fails(call, grpc.StatusCode.INVALID_ARGUMENT, field="query.response_format")


async def test_a_json_answer_for_any_valid_schema(stubs: Stubs, db: Database, ws: str) -> None:
    """Valid schemas the local provider cannot follow (a remote $ref, a recursive one,
    boolean subschemas) still get a JSON object, never INTERNAL."""
    await seed(stubs, db, ws)
    for spec in ({"type": "object", "properties": {"job": {"$ref": "https://x.test/s.json"}}},
                 {"type": "object", "properties": {"job": True, "never": False}},
                 {"$defs": {"n": {"type": "object", "properties": {
                     "job": {"type": "string"}, "next": {"$ref": "#/$defs/n"}}}},
                  "$ref": "#/$defs/n", "type": "object"},
                 # No type (taken as an object), unknown keywords, a $ref to itself.
                 {"": 1, "job": None}, {"$ref": "#"}, {"type": "object", "$ref": "#"}):
        schema = struct_pb2.Struct()
        schema.update(spec)
        r = await stubs.dialectic.Chat(pb.ChatRequest(query=query(
            ws, "Which job as a nurse?", response_format=schema)))
        answer = json.loads(r.content)
        assert isinstance(answer, dict), spec
        assert "nurse" in answer["job"] if "$defs" in spec or "properties" in spec \
            else answer == {}, (spec, answer)
    # A choice whose branches name no type takes the type and properties beside it.
    choice = struct_pb2.Struct()
    choice.update({"oneOf": [{"required": ["job"]}, {"required": ["city"]}],
                   "properties": {"job": {"type": "string"}, "city": {"type": "string"}}})
    r = await stubs.dialectic.Chat(pb.ChatRequest(query=query(
        ws, "Which job as a nurse?", response_format=choice)))
    assert set(json.loads(r.content)) == {"job", "city"}


async def test_cancel_stops_the_stream(stubs: Stubs, db: Database, ws: str) -> None:
    await seed(stubs, db, ws)
    call = stubs.dialectic.StreamChat(pb.StreamChatRequest(query=query(ws, "nurse job?")))
    first = await call.read()
    assert first.HasField("delta")
    call.cancel()
    await asyncio.sleep(0.1)
    assert call.cancelled()


async def test_bad_input_and_unknown_peers(stubs: Stubs, ws: str) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await fails(stubs.dialectic.Chat(pb.ChatRequest(query=query(ws, ""))), invalid,
                field="query.query")
    await fails(stubs.dialectic.Chat(pb.ChatRequest(query=query(ws, "x", target_id="a b"))),
                invalid, field="query.target_id")
    await fails(stubs.dialectic.Chat(pb.ChatRequest(query=query(ws, "x"))),
                grpc.StatusCode.NOT_FOUND, reason="PEER_NOT_FOUND")
    # Errors in a stream arrive as a status, not inside the stream.
    stream = stubs.dialectic.StreamChat(pb.StreamChatRequest(query=query(ws, "x")))
    await fails(stream.read(), grpc.StatusCode.NOT_FOUND)


async def test_the_local_provider_looks_up_what_the_prefetch_lacks(stubs: Stubs, db: Database,
                                                                   ws: str) -> None:
    """From `low` up the local provider gets the tools, as a remote model does. With an empty
    prefetch, the answer can only come from its lookup, run by the real toolbox on the
    database (full-text search finds the message before it is embedded)."""
    await seed(stubs, db, ws)
    view = await viewpoint(db.pool, ws, "alice", "alice")
    q = Question(ws, "alice", "alice", "Where does alice work as a nurse?", level="low")
    toolbox = Toolbox(db.pool, FakeEmbedder(384), view)
    answer = Answer()
    text = "".join([p async for p in llm_answer(LocalProvider(), q, Gathered(view), answer,
                                                 toolbox)])
    assert text == ("Based on what is known about alice: alice said: I work as a nurse in "
                    "Lyon.")
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    # Without tools (the `minimal` level) the same empty prefetch gets an abstention.
    q.level = "minimal"
    text = "".join([p async for p in llm_answer(LocalProvider(), q, Gathered(view), Answer(),
                                                 toolbox)])
    assert text == "I don't have information about alice that answers this."
