"""Chat and StreamChat through each official SDK (openai, anthropic) against a local server
speaking its wire protocol, at the `minimal` level (no tool rounds): deltas as the provider
produces them, usage from the provider, JSON answers, and a client cancel reaching the
provider at once."""

from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import dialectic_pb2 as pb
from honcho_grpc_proto.v1 import peer_pb2

from honcho_grpc.db.pool import Database
from tests.fakes.script import Failure, Reply
from tests.helpers import fails
from tests.providers.conftest import ChatRig, chat_rig


async def ask(rig: ChatRig, ws: str, **kw: object) -> pb.ChatQuery:
    await rig.stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                          peer_id="alice"))
    return pb.ChatQuery(workspace_id=ws, peer_id="alice", query="What does alice do?",
                        reasoning_level=pb.REASONING_LEVEL_MINIMAL, **kw)  # type: ignore[arg-type]


async def test_deltas_in_order_then_provider_usage(rig: ChatRig, ws: str) -> None:
    chunks = ["Al", "ice ", "is ", "a ", "nurse."]
    rig.fake.push(Reply(chunks=chunks, input_tokens=23, output_tokens=5))
    events = [e async for e in rig.stubs.dialectic.StreamChat(
        pb.StreamChatRequest(query=await ask(rig, ws)))]
    assert [e.delta.content for e in events[:-1]] == chunks
    assert all(e.HasField("delta") for e in events[:-1])
    done = events[-1].completion
    assert events[-1].HasField("completion")
    assert (done.usage.input_tokens, done.usage.output_tokens) == (23, 5)
    assert done.finish_reason == pb.FINISH_REASON_STOP
    body = rig.fake.bodies[-1]
    assert body["model"] == "test-model" and body["stream"] is True
    assert "alice" in rig.prompt_text(body)
    # `minimal` never offers tools: one streamed call, nothing else.
    assert len(rig.fake.requests) == 1 and "tools" not in body


async def test_length_finish_reaches_the_client(rig: ChatRig, ws: str) -> None:
    stop = "length" if rig.kind == "openai" else "max_tokens"
    rig.fake.push(Reply("Alice is", finish_reason=stop))
    events = [e async for e in rig.stubs.dialectic.StreamChat(
        pb.StreamChatRequest(query=await ask(rig, ws)))]
    assert events[-1].completion.finish_reason == pb.FINISH_REASON_MAX_TOKENS


async def test_json_answer(rig: ChatRig, ws: str) -> None:
    answer = {"job": "nurse"}
    # json_schema mode: OpenAI sends the schema as response_format, Anthropic forces a tool.
    rig.fake.push(Reply(json.dumps(answer)) if rig.kind == "openai"
                  else Reply("", tool_calls=[("toolu_1", "answer", answer)]))
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "title": "answer",
                   "properties": {"job": {"type": "string"}}})
    r = await rig.stubs.dialectic.Chat(pb.ChatRequest(
        query=await ask(rig, ws, response_format=schema)))
    assert json.loads(r.content) == answer
    assert (r.usage.input_tokens, r.usage.output_tokens) == (11, 7)
    body = rig.fake.bodies[-1]
    if rig.kind == "openai":
        assert body["response_format"]["type"] == "json_schema"
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "answer"}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_cancel_reaches_the_provider(kind: str, pg_dsn: str, db: Database,
                                           ws: str) -> None:
    async with chat_rig(kind, pg_dsn, db, chunk_delay=0.05) as rig:
        rig.fake.push(Reply(chunks=[f"w{i} " for i in range(200)]))  # 10 s of stream
        call = rig.stubs.dialectic.StreamChat(pb.StreamChatRequest(query=await ask(rig, ws)))
        first = await call.read()
        assert first.HasField("delta")
        call.cancel()
        # The server closes the provider's HTTP stream: the fake sees the client hang up long
        # before it would have finished.
        await asyncio.wait_for(rig.fake.hung_up.wait(), 5)
        assert rig.fake.streams_completed == 0


@pytest.mark.parametrize(("status", "retryable"), [(503, "true"), (401, "false")])
async def test_provider_failure_is_unavailable_not_internal(rig: ChatRig, ws: str, status: int,
                                                            retryable: str) -> None:
    """A failing provider is an upstream outage, never INTERNAL: the status says whether a
    retry may help (with RetryInfo then) and which HTTP status the provider gave."""
    query = await ask(rig, ws)
    rig.fake.push(Failure(status, "upstream says no: secret prompt text"))

    async def streamed() -> list[pb.StreamChatResponse]:
        return [e async for e in rig.stubs.dialectic.StreamChat(
            pb.StreamChatRequest(query=query))]

    failure = await fails(streamed(), grpc.StatusCode.UNAVAILABLE, reason="LLM_UNAVAILABLE")
    assert failure.info.metadata["retryable"] == retryable
    assert failure.info.metadata["provider_status"] == str(status)
    rig.fake.push(Failure(status))
    await fails(rig.stubs.dialectic.Chat(pb.ChatRequest(query=query)),
                grpc.StatusCode.UNAVAILABLE, reason="LLM_UNAVAILABLE")


async def test_http_stream_answers_a_failure_before_its_first_piece_with_its_status(
        rig: ChatRig, ws: str) -> None:
    """Honcho's SSE chat: a provider failing before the first piece is a 503 with its
    detail, not a 200 stream holding only `done` (which reads as an empty answer)."""
    await ask(rig, ws)
    rig.fake.push(Failure(503, "upstream says no"))
    async with httpx.AsyncClient(base_url=rig.http, timeout=10) as http:
        failed = await http.post(f"/v3/workspaces/{ws}/peers/alice/chat",
                                 json={"query": "What does alice do?", "stream": True,
                                       "reasoning_level": "minimal"})
        assert failed.status_code == 503, failed.text
        assert "detail" in failed.json()
        rig.fake.push(Reply(chunks=["Alice ", "is ", "a ", "nurse."]))
        whole = await http.post(f"/v3/workspaces/{ws}/peers/alice/chat",
                                json={"query": "What does alice do?", "stream": True,
                                      "reasoning_level": "minimal"})
    assert whole.status_code == 200
    events = [json.loads(line[len("data: "):]) for line in whole.text.splitlines()
              if line.startswith("data: ")]
    assert "".join(e["delta"]["content"] for e in events[:-1]) == "Alice is a nurse."
    assert events[-1] == {"done": True}


async def test_an_http_chat_whose_client_left_stops_its_model_call(pg_dsn: str, db: Database,
                                                                   ws: str) -> None:
    """uvicorn does not cancel a route whose client hung up: the chat notices, and the
    provider's stream is closed rather than read to its end for nobody."""
    async with chat_rig("openai", pg_dsn, db, chunk_delay=0.5) as rig:
        await ask(rig, ws)
        rig.fake.push(Reply(chunks=[f"w{i} " for i in range(200)]))  # 100 s of answer
        async with httpx.AsyncClient(base_url=rig.http) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(f"/v3/workspaces/{ws}/peers/alice/chat", timeout=2,
                                json={"query": "What does alice do?",
                                      "reasoning_level": "minimal"})
        await asyncio.wait_for(rig.fake.hung_up.wait(), 10)
        assert rig.fake.streams_completed == 0


async def test_answer_that_is_not_json_is_the_providers_failure(rig: ChatRig, ws: str) -> None:
    """A response_format the model cannot meet (even after the repair attempts) is an
    upstream failure with its own reason, not INTERNAL and not the caller's fault."""
    query = await ask(rig, ws)
    query.response_format.update({"type": "object", "properties": {"job": {"type": "string"}}})
    rig.fake.default = Reply("I would rather not answer in JSON.") if rig.kind == "openai" \
        else Reply("", tool_calls=[("toolu_1", "answer", {"job": 7})])
    await fails(rig.stubs.dialectic.Chat(pb.ChatRequest(query=query)),
                grpc.StatusCode.UNAVAILABLE, reason="LLM_INVALID_OUTPUT")
