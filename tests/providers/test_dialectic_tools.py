"""The dialectic's tool loop through the real gRPC server and each official SDK (openai,
anthropic) against a local server speaking its wire protocol, with scripted tool calls: the
tools run against real data from the asker's viewpoint and their results go back to the
model, the rounds stop at the level's bound, bad arguments come back as error text, and
usage adds up over every call. Every round is streamed: a direct answer reaches the client
while the provider is still writing it (once it is clearly more than a preamble), a tool
round's preamble never reaches it, and a client's cancel reaches the provider."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from honcho_grpc_proto.v1 import dialectic_pb2 as pb
from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.domain.dialectic_tools import HOLD_CHARS
from honcho_grpc.providers.embeddings import FakeEmbedder
from tests.fakes.script import Reply
from tests.providers.conftest import ChatRig, chat_rig

TOOLS = ["search_conclusions", "search_messages", "grep_messages", "message_context",
         "messages_by_date", "get_premises", "get_dependents"]


def at(day: int, hour: int = 12) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2024, 3, day, hour, tzinfo=UTC))
    return stamp


async def seed(rig: ChatRig, db: Database, ws: str) -> None:
    """bob shares session `s-shared` with alice; `s-private` is alice's and carol's. bob holds
    conclusions about alice (one superseded, one derived from two premises); alice holds one
    about herself that bob must never see."""
    said = message_pb2.MessageInput

    async def create(session: str, *messages: message_pb2.MessageInput) -> list[str]:
        r = await rig.stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id=session, messages=messages))
        return [m.id for m in r.messages]

    cat, _ = await create("s-shared",
                          said(peer_id="alice", content="I adopted a cat named Miso",
                               create_time=at(2)),
                          said(peer_id="bob", content="Miso is a lovely name for a cat",
                               create_time=at(2, 13)))
    await create("s-private",
                 said(peer_id="alice", content="My salary is 90k and my cat Miso is sick",
                      create_time=at(5)),
                 said(peer_id="carol", content="sorry to hear", create_time=at(5, 13)))
    embedder = FakeEmbedder(384)
    rows = [("c-cat", "bob", "explicit", "alice has a cat named Miso", [], [cat], False),
            ("c-gone", "bob", "explicit", "alice has no pets at all", [], [], True),
            ("c-owner", "bob", "deductive", "alice is a pet owner who likes cats",
             ["c-cat", "c-gone"], [], False),
            ("c-salary", "alice", "explicit", "alice earns 90k and has a cat", [], [], False)]
    for cid, observer, level, content, premises, sources, superseded in rows:
        await db.pool.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "content, level, premise_ids, source_message_ids, embedding, invalidated_at) "
            "VALUES ($1, $2, $3, 'alice', $4, $5, $6, $7, $8, "
            "CASE WHEN $9 THEN now() END)",
            ws, cid, observer, content, level, premises, sources,
            await embedder.embed_one(content), superseded)


def bob_asks(ws: str, level: int = pb.REASONING_LEVEL_LOW) -> pb.ChatQuery:
    return pb.ChatQuery(workspace_id=ws, peer_id="bob", target_id="alice",
                        query="Does alice have pets?", reasoning_level=level)  # type: ignore[arg-type]


async def test_tools_run_on_real_data_and_results_go_back(rig: ChatRig, db: Database,
                                                          ws: str) -> None:
    await seed(rig, db, ws)
    rig.fake.push(
        Reply("Let me check.", tool_calls=[
            ("call_1", "search_conclusions", {"query": "alice pets cat", "limit": 100}),
            ("call_2", "search_messages", {"query": "Miso cat"}),
            ("call_3", "messages_by_date", {"start": "2024-03-01", "end": "2024-03-31"}),
            ("call_4", "get_premises", {"conclusion_id": "c-owner"})],
            input_tokens=100, output_tokens=20),
        Reply("Yes: alice has a cat named Miso.", input_tokens=300, output_tokens=9))
    r = await rig.stubs.dialectic.Chat(pb.ChatRequest(query=bob_asks(ws)))

    # What the model said before its lookups was a preamble, not the answer.
    assert r.content == "Yes: alice has a cat named Miso."
    assert (r.usage.input_tokens, r.usage.output_tokens) == (400, 29)
    first, second = rig.fake.bodies
    assert rig.offered_tools(first) == TOOLS == rig.offered_tools(second)
    results = rig.tool_results(second)
    assert sorted(results) == ["call_1", "call_2", "call_3", "call_4"]
    # Valid conclusions of bob about alice only: not the superseded one, not alice's own.
    assert "c-cat" in results["call_1"] and "c-owner" in results["call_1"]
    assert "c-gone" not in results["call_1"] and "90k" not in results["call_1"]
    # Every speaker's words from the session bob shares with alice, labelled; never alice's
    # private session with carol.
    for call in ("call_2", "call_3"):
        assert "alice: I adopted a cat named Miso" in results[call]
        assert "salary" not in results[call] and "sorry to hear" not in results[call]
    assert "bob: Miso is a lovely name" in results["call_3"]
    assert "2024-03-02 Sat 12:00; session s-shared" in results["call_3"]
    premises = results["call_4"]
    assert "c-cat" in premises and "c-gone" in premises and "superseded" in premises
    assert "I adopted a cat named Miso" not in premises  # c-owner has no source messages
    assert {"c-cat", "c-owner"} <= set(r.conclusion_ids)
    assert "c-gone" not in r.conclusion_ids and "c-salary" not in r.conclusion_ids


async def test_rounds_stop_at_the_level_bound(rig: ChatRig, db: Database, ws: str) -> None:
    await seed(rig, db, ws)
    asking = [Reply("", tool_calls=[(f"call_{i}", "get_premises", {"conclusion_id": "c-owner"})])
              for i in range(5)]  # `low` allows 5 rounds; the model would go on
    final = Reply(chunks=["alice ", "has ", "a ", "cat."], input_tokens=40, output_tokens=4)
    rig.fake.push(*asking, final, *asking)
    events = [e async for e in rig.stubs.dialectic.StreamChat(pb.StreamChatRequest(
        query=bob_asks(ws, pb.REASONING_LEVEL_LOW)))]

    assert [e.delta.content for e in events[:-1]] == ["alice ", "has ", "a ", "cat."]
    done = events[-1].completion
    assert (done.usage.input_tokens, done.usage.output_tokens) == (5 * 11 + 40, 5 * 7 + 4)
    bodies = rig.fake.bodies
    assert len(bodies) == 6
    assert all(rig.offered_tools(b) == TOOLS and b["stream"] is True for b in bodies[:5])
    # Each round carries every earlier round's results.
    assert [len(rig.tool_results(b)) for b in bodies[:5]] == [0, 1, 2, 3, 4]
    last = bodies[5]
    assert last["stream"] is True and "tools" not in last and rig.tool_results(last) == {}
    # The lookups' results reach the final answer as plain text.
    assert "get_premises" in rig.prompt_text(last) and "c-gone" in rig.prompt_text(last)
    assert "c-owner" in done.conclusion_ids


async def test_bad_arguments_come_back_as_error_text(rig: ChatRig, db: Database,
                                                     ws: str) -> None:
    await seed(rig, db, ws)
    rig.fake.push(
        Reply("", tool_calls=[
            ("b1", "search_conclusions", {"query": 5}),
            ("b2", "messages_by_date", {"start": "last tuesday"}),
            ("b3", "search_messages", {"query": "cat", "limit": "many"}),
            ("b4", "get_premises", {"conclusion_id": "c-salary"})]),  # alice's, not bob's
        Reply("", tool_calls=[
            ("b5", "drop_tables", {}),
            ("b6", "messages_by_date", {"start": "2024-03-31", "end": "2024-03-01"}),
            ("b7", "messages_by_date", {}),
            ("b8", "search_conclusions", {"query": " "}),
            ("b9", "search_conclusions", {"query": "cat"})]),  # the 5th call of a round
        Reply("", tool_calls=[
            ("b10", "messages_by_date", {"end": "9999-12-31"}),
            ("b11", "grep_messages", {"query": "cat"}),  # its argument is `text`
            ("b12", "message_context", {"message_id": "nope", "before": 2}),
            ("b13", "get_dependents", {"conclusion_id": ["c-cat"]})]),
        Reply("", tool_calls=[
            ("b14", "search_messages", {"query": "cat", "start": "yesterday"}),
            ("b15", "grep_messages", {"text": "x" * 1001}),
            ("b16", "message_context", {"message_id": "m", "after": True})]),
        Reply(chunks=["I could not ", "look that up."]))
    r = await rig.stubs.dialectic.Chat(pb.ChatRequest(
        query=bob_asks(ws, pb.REASONING_LEVEL_LOW)))

    assert r.content == "I could not look that up."
    results = rig.tool_results(rig.fake.bodies[4])
    assert sorted(results, key=lambda k: int(k[1:])) == [f"b{i}" for i in range(1, 17)]
    assert all(text.startswith("error: ") for text in results.values()), results
    assert "'query'" in results["b1"] and "ISO 8601" in results["b2"]
    assert "'limit'" in results["b3"] and "c-salary" in results["b4"]
    assert "no tool 'drop_tables'" in results["b5"] and "before" in results["b6"]
    assert "at most 4" in results["b9"] and "out of range" in results["b10"]
    assert "'text'" in results["b11"] and "no message 'nope'" in results["b12"]
    assert "'conclusion_id'" in results["b13"] and "ISO 8601" in results["b14"]
    assert "longer than" in results["b15"] and "'after'" in results["b16"]
    assert "c-salary" not in r.conclusion_ids


async def test_unparseable_tool_arguments_end_the_rounds(pg_dsn: str, db: Database,
                                                         ws: str) -> None:
    # Only the OpenAI wire carries arguments as a JSON string that can fail to parse.
    async with chat_rig("openai", pg_dsn, db) as rig:
        await seed(rig, db, ws)
        garbled: Any = "not an object"
        rig.fake.push(Reply("", tool_calls=[("call_1", "search_messages", garbled)]),
                      Reply("alice has a cat."))
        r = await rig.stubs.dialectic.Chat(pb.ChatRequest(query=bob_asks(ws)))
        assert r.content == "alice has a cat."
        first, last = rig.fake.bodies
        assert "tools" in first and "tools" not in last
        assert first["stream"] is True and last["stream"] is True


async def test_json_answer_after_tool_rounds(rig: ChatRig, db: Database, ws: str) -> None:
    await seed(rig, db, ws)
    answer = {"has_pets": True}
    rig.fake.push(
        Reply("", tool_calls=[("call_1", "search_messages", {"query": "cat"})]),
        Reply('{"has_pets": true}'),  # a plain reply; the answer comes from a structured call
        Reply(json.dumps(answer)) if rig.kind == "openai"
        else Reply("", tool_calls=[("toolu_9", "answer", answer)]))
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "title": "answer",
                   "properties": {"has_pets": {"type": "boolean"}}})
    query = bob_asks(ws)
    query.response_format.CopyFrom(schema)
    r = await rig.stubs.dialectic.Chat(pb.ChatRequest(query=query))

    assert json.loads(r.content) == answer
    assert (r.usage.input_tokens, r.usage.output_tokens) == (33, 21)
    last = rig.fake.bodies[2]
    assert ("response_format" in last) if rig.kind == "openai" \
        else last["tool_choice"] == {"type": "tool", "name": "answer"}
    assert "I adopted a cat named Miso" in rig.prompt_text(last)


# -- streamed rounds --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_direct_answer_streams_while_the_provider_writes_it(
        kind: str, pg_dsn: str, db: Database, ws: str) -> None:
    async with chat_rig(kind, pg_dsn, db, chunk_delay=0.2) as rig:
        await seed(rig, db, ws)
        chunks = [f"{i:02d} " + "w" * 46 + " " for i in range(12)]  # 50 characters each
        rig.fake.push(Reply(chunks=chunks, input_tokens=50, output_tokens=40))
        events = aiter(rig.stubs.dialectic.StreamChat(pb.StreamChatRequest(
            query=bob_asks(ws))))
        first = await anext(events)
        # Held until it is longer than any preamble (HOLD_CHARS), then sent while the fake
        # is still sending the rest: nothing waited for the whole answer.
        held = len(first.delta.content)
        assert HOLD_CHARS < held <= HOLD_CHARS + 50 and rig.fake.streams_completed == 0
        rest = [e async for e in events]

    assert "".join(e.delta.content for e in [first, *rest[:-1]]) == "".join(chunks)
    assert [e.delta.content for e in rest[:-1]] == chunks[held // 50:]
    done = rest[-1].completion
    assert (done.usage.input_tokens, done.usage.output_tokens) == (50, 40)
    assert done.finish_reason == pb.FINISH_REASON_STOP
    # One call, the tool round itself: the model answered in it, so it was the answer.
    (only,) = rig.fake.bodies
    assert only["stream"] is True and rig.offered_tools(only) == TOOLS


async def test_a_tool_rounds_preamble_is_not_streamed(rig: ChatRig, db: Database,
                                                      ws: str) -> None:
    await seed(rig, db, ws)
    rig.fake.push(
        Reply(chunks=["Let ", "me ", "search ", "for ", "that."],
              tool_calls=[("call_1", "search_conclusions", {"query": "alice pets"})],
              input_tokens=100, output_tokens=20),
        Reply(chunks=["One ", "more ", "look."],
              tool_calls=[("call_2", "grep_messages", {"text": "Miso"})],
              input_tokens=150, output_tokens=10),
        Reply(chunks=["alice ", "has ", "a ", "cat ", "named ", "Miso."],
              input_tokens=300, output_tokens=9))
    events = [e async for e in rig.stubs.dialectic.StreamChat(pb.StreamChatRequest(
        query=bob_asks(ws)))]

    # Only the answer's own deltas, as the provider sent them; no preamble, no separator.
    assert [e.delta.content for e in events[:-1]] == [
        "alice ", "has ", "a ", "cat ", "named ", "Miso."]
    done = events[-1].completion
    assert (done.usage.input_tokens, done.usage.output_tokens) == (550, 39)
    assert done.finish_reason == pb.FINISH_REASON_STOP
    first, second, third = rig.fake.bodies
    assert all(b["stream"] is True for b in (first, second, third))
    assert list(rig.tool_results(third)) == ["call_1", "call_2"]
    # The model still sees what it said in its own turns.
    assert "Let me search for that." in rig.prompt_text(third)
    assert "c-cat" in done.conclusion_ids


async def test_a_long_text_before_a_lookup_stays_sent(rig: ChatRig, db: Database,
                                                      ws: str) -> None:
    """Past HOLD_CHARS a round's text is taken for the answer and streams; if the model then
    calls a tool anyway, what was sent cannot be taken back: the answer follows it after a
    paragraph break."""
    await seed(rig, db, ws)
    long = "alice has a cat named Miso, adopted in March. " * 6  # 276 characters
    assert len(long) > HOLD_CHARS
    rig.fake.push(
        Reply(long.strip(), tool_calls=[("call_1", "search_conclusions", {"query": "cat"})]),
        Reply("She also mentioned it to bob."))
    r = await rig.stubs.dialectic.Chat(pb.ChatRequest(query=bob_asks(ws)))
    assert r.content == long.strip() + "\n\nShe also mentioned it to bob."


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("read_first", [True, False])
async def test_cancel_during_a_tool_round_reaches_the_provider(
        kind: str, read_first: bool, pg_dsn: str, db: Database, ws: str) -> None:
    async with chat_rig(kind, pg_dsn, db, chunk_delay=0.1) as rig:
        await seed(rig, db, ws)
        rig.fake.push(Reply(chunks=[f"{i:03d} " + "w" * 46 for i in range(200)]))  # 20 s
        call = rig.stubs.dialectic.StreamChat(pb.StreamChatRequest(query=bob_asks(ws)))
        if read_first:  # cancelled while the answer streams
            assert (await call.read()).delta.content.startswith("000 ")
        else:  # cancelled while the round's text is still held back
            await asyncio.to_thread(rig.fake.arrived.wait, 10)
        call.cancel()
        await asyncio.wait_for(rig.fake.hung_up.wait(), 5)
        assert rig.fake.streams_completed == 0
        (only,) = rig.fake.bodies
        assert rig.offered_tools(only) == TOOLS  # it was the tool round that was cut
