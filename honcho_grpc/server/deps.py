"""What the servicers need, built once by the composition root (server/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.llm import LLMProvider
from honcho_grpc.settings import Settings


@dataclass
class Deps:
    settings: Settings
    db: Database
    embedder: Any  # honcho_grpc.providers.embeddings.Embedder
    llm: LLMProvider  # the configured provider, the offline `local` one by default

    @property
    def pool(self) -> Any:
        return self.db.pool
