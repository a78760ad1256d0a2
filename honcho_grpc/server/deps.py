"""What the servicers need, built once by the composition root (server/app.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.providers.llm import LLMProvider
from honcho_grpc.settings import Settings


@dataclass
class Deps:
    settings: Settings
    db: Database
    embedder: Embedder
    llm: LLMProvider  # the configured provider, the offline `local` one by default

    @property
    def pool(self) -> asyncpg.Pool:
        return self.db.pool
