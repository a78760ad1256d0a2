"""Fixtures for provider tests: the fake servers, providers built from settings that point
the official SDKs at them (nothing is patched), and a real gRPC server using such a provider
(`rig`, for the dialectic)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.providers.llm import Backoff, LLMProvider, build_llm
from honcho_grpc.server.app import Running, start
from honcho_grpc.settings import LLMSettings
from tests.conftest import Stubs, make_settings, make_stubs
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import ScriptedServer

FAST = Backoff(initial=0.01, maximum=0.05)  # real waits, short enough for tests


@dataclass
class Remote:
    """A fake server and the kind of provider that talks to it; `close` closes the providers
    made (their SDK clients hold pooled connections)."""

    kind: str
    fake: ScriptedServer
    made: list[LLMProvider] = field(default_factory=list)

    def provider(self, **settings: Any) -> LLMProvider:
        values = {"provider": self.kind, "model": "main-model", "max_retries": 0,
                  "timeout_seconds": 5.0, f"{self.kind}_base_url": self.fake.url, **settings}
        self.made.append(build_llm(LLMSettings(**values), backoff=FAST))
        return self.made[-1]

    async def close(self) -> None:
        for provider in self.made:
            await provider.aclose()


@asynccontextmanager
async def serving(kind: str, chunk_delay: float = 0.0) -> AsyncIterator[Remote]:
    fake = FakeOpenAI(chunk_delay) if kind == "openai" else FakeAnthropic(chunk_delay)
    async with fake:
        remote = Remote(kind, fake)
        try:
            yield remote
        finally:
            await remote.close()


@pytest.fixture(params=["openai", "anthropic"])
async def remote(request: pytest.FixtureRequest) -> AsyncIterator[Remote]:
    async with serving(request.param) as remote:
        yield remote


@pytest.fixture
async def openai_remote() -> AsyncIterator[Remote]:
    async with serving("openai") as remote:
        yield remote


@pytest.fixture
async def anthropic_remote() -> AsyncIterator[Remote]:
    async with serving("anthropic") as remote:
        yield remote


@dataclass
class ChatRig:
    """A real server whose LLM provider is the official SDK of `kind` pointed at a fake
    server speaking its wire protocol; `stubs` talk to the server over a real channel."""

    kind: str
    fake: ScriptedServer
    stubs: Stubs
    http: str = ""  # the same server's HTTP face

    def tool_results(self, body: dict[str, Any]) -> dict[str, str]:
        """The tool results a request carried, by call id, whatever the wire format."""
        if self.kind == "openai":
            return {m["tool_call_id"]: m["content"] for m in body["messages"]
                    if m["role"] == "tool"}
        return {b["tool_use_id"]: b["content"] for m in body["messages"]
                if isinstance(m["content"], list) for b in m["content"]
                if b.get("type") == "tool_result"}

    def offered_tools(self, body: dict[str, Any]) -> list[str]:
        return [t["function"]["name"] if self.kind == "openai" else t["name"]
                for t in body.get("tools") or []]

    def prompt_text(self, body: dict[str, Any]) -> str:
        """Everything the request said, as one string (for `in` checks)."""
        return json.dumps([body.get("system", ""), body["messages"]])


@asynccontextmanager
async def chat_rig(kind: str, pg_dsn: str, db: Database, chunk_delay: float = 0.0,
                   **llm: Any) -> AsyncIterator[ChatRig]:
    fake = FakeOpenAI(chunk_delay) if kind == "openai" else FakeAnthropic(chunk_delay)
    async with fake:
        settings = make_settings(pg_dsn, llm={"provider": kind, "model": "test-model",
                                              f"{kind}_base_url": fake.url,
                                              "max_retries": 0, "timeout_seconds": 10.0,
                                              **llm})
        running: Running = await start(settings, db, embedder=FakeEmbedder(384),
                                       background=False)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield ChatRig(kind, fake, make_stubs(channel),
                          f"http://127.0.0.1:{running.http_port}")
        finally:
            await channel.close()
            await running.stop(grace=1.0)
            if running.deps.llm is not None:
                await running.deps.llm.aclose()


@pytest.fixture(params=["openai", "anthropic"])
async def rig(request: pytest.FixtureRequest, pg_dsn: str,
              db: Database) -> AsyncIterator[ChatRig]:
    async with chat_rig(request.param, pg_dsn, db) as made:
        yield made
