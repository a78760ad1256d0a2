"""What the servicers need, built once by the composition root (server/app.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.llm import LLMProvider
from honcho_grpc.server.limits import StreamLimiter
from honcho_grpc.settings import Settings


@dataclass
class Deps:
    settings: Settings
    db: Database
    embedder: Embedder
    llm: LLMProvider  # the configured provider, the offline `local` one by default
    streams: StreamLimiter = field(init=False)

    def __post_init__(self) -> None:
        app = self.settings.app
        self.streams = StreamLimiter(app.max_streams_per_workspace, app.max_streams_per_token)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.db.pool
