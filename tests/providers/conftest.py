"""Fixtures for provider tests: the fake servers, and providers built from settings that
point the official SDKs at them (nothing is patched)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from honcho_grpc.providers.llm import Backoff, LLMProvider, build_llm
from honcho_grpc.settings import LLMSettings
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
