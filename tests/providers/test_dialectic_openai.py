"""StreamChat through the official openai SDK against a local server speaking its wire
protocol: deltas as the provider produces them, usage from the provider, JSON answers, and a
client cancel reaching the provider at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.gen.honcho.v1 import dialectic_pb2 as pb
from honcho_grpc.gen.honcho.v1 import peer_pb2
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.conftest import Stubs, make_settings, make_stubs
from tests.providers.sse_openai import ScriptedOpenAI, scripted_openai


@pytest.fixture
async def provider_server(pg_dsn: str, db: Database) -> AsyncIterator[tuple[Stubs, ScriptedOpenAI]]:
    with scripted_openai(delay=0.05) as fake:
        settings = make_settings(pg_dsn, llm={"provider": "openai", "model": "test-model",
                                              "openai_base_url": fake.url, "max_retries": 1})
        running: Running = await start(settings, db, embedder=FakeEmbedder(384),
                                       background=False)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        yield make_stubs(channel), fake
        await channel.close()
        await running.stop(grace=1.0)


async def ask(stubs: Stubs, ws: str, **kw: object) -> pb.StreamChatRequest:
    await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                      peer_id="alice"))
    return pb.StreamChatRequest(query=pb.ChatQuery(workspace_id=ws, peer_id="alice",
                                                   query="What does alice do?", **kw))  # type: ignore[arg-type]


async def test_deltas_in_order_with_provider_usage(
        provider_server: tuple[Stubs, ScriptedOpenAI], ws: str) -> None:
    stubs, fake = provider_server
    events = [e async for e in stubs.dialectic.StreamChat(await ask(stubs, ws))]
    deltas = [e.delta.content for e in events if e.HasField("delta")]
    assert deltas == fake.words
    assert events[-1].HasField("completion")
    assert events[-1].completion.usage.input_tokens == 11
    assert events[-1].completion.usage.output_tokens == 7
    sent = fake.requests[-1]
    assert sent["model"] == "test-model" and sent["stream"] is True
    assert "alice" in sent["messages"][0]["content"]


async def test_json_answer(provider_server: tuple[Stubs, ScriptedOpenAI], ws: str) -> None:
    stubs, fake = provider_server
    fake.json_answer = {"job": "nurse"}
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"job": {"type": "string"}}})
    request = await ask(stubs, ws, response_format=schema)
    r = await stubs.dialectic.Chat(pb.ChatRequest(query=request.query))
    assert json.loads(r.content) == {"job": "nurse"}
    assert fake.requests[-1]["response_format"]["type"] == "json_schema"


async def test_cancel_reaches_the_provider(provider_server: tuple[Stubs, ScriptedOpenAI],
                                           ws: str) -> None:
    stubs, fake = provider_server
    fake.words = [f"w{i} " for i in range(200)]  # 10 s of stream at 50 ms a chunk
    call = stubs.dialectic.StreamChat(await ask(stubs, ws))
    first = await call.read()
    assert first.HasField("delta")
    call.cancel()
    # The server closes the provider's HTTP stream: the fake sees the disconnect long before
    # it would have finished.
    assert await asyncio.to_thread(fake.disconnected.wait, 5)
    assert not fake.completed.is_set()
