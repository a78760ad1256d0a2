"""Embedding providers: the real offline model, the bag-of-words fake, and the OpenAI provider
through the official SDK against a local server speaking the `/v1/embeddings` wire protocol
(tests/fakes/openai_server.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from honcho_grpc.providers.embeddings import (
    LOCAL_MODEL_ID,
    OPENAI_DEFAULT_MODEL,
    Embedder,
    EmbeddingDimensionError,
    EmbeddingError,
    FakeEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
    Vector,
    build_embedder,
    check_dimensions,
)
from honcho_grpc.settings import EmbeddingSettings
from tests.fakes.openai_server import FakeOpenAI


def cosine(a: Vector, b: Vector) -> float:
    return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))


def settings(**values: Any) -> EmbeddingSettings:
    return EmbeddingSettings(**values)


# --- the offline model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> LocalEmbedder:
    embedder = LocalEmbedder(threads=2, batch_size=64)
    embedder.warm()
    return embedder


async def test_local_vectors_are_384_unit_float32(model: LocalEmbedder) -> None:
    vectors = await model.embed(["I love hiking in the mountains", "", "x " * 1000])
    assert len(vectors) == 3
    for v in vectors:
        assert v.shape == (384,) and v.dtype == np.float32 and v.flags["C_CONTIGUOUS"]
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-4
    assert model.model_id == LOCAL_MODEL_ID and model.dimensions == 384
    assert await model.embed([]) == []


async def test_local_similarity(model: LocalEmbedder) -> None:
    hiking, alps, market = await model.embed(
        ["I love hiking in the mountains", "hiking trips in the alps", "the stock market fell"])
    assert float(hiking @ alps) > float(hiking @ market) + 0.3


async def test_local_truncates_at_256_tokens(model: LocalEmbedder) -> None:
    # Both are cut to the same first 254 word tokens (+ [CLS], [SEP]).
    long, longer = await model.embed(["word " * 400, "word " * 2000])
    assert cosine(long, longer) > 0.9999


async def test_local_order_preserved_with_mixed_lengths(model: LocalEmbedder) -> None:
    texts = ["a much longer sentence about the history of the Roman empire and its roads " * 3,
             "short", "", "medium length sentence about cooking pasta",
             "x " * 300, "tiny one", "Ünïcödé テキスト 😀 and emoji"]
    together = await model.embed(texts)
    for text, vec in zip(texts, together, strict=True):
        alone = await model.embed_one(text)
        # int8 dynamic quantisation scales per batch: equal up to rounding, not bit for bit.
        assert cosine(vec, alone) > 0.999, text
    assert cosine(together[1], together[5]) < 0.99  # distinct texts, distinct vectors


async def test_local_batch_of_200(model: LocalEmbedder) -> None:
    texts = [f"sentence number {i} talks about {'cats' if i % 2 else 'the weather'}"
             + " and more" * (i % 13) for i in range(200)]
    vectors = await model.embed(texts)
    assert len(vectors) == 200
    assert all(v.shape == (384,) for v in vectors)
    for i in (0, 1, 63, 64, 127, 128, 199):
        assert cosine(vectors[i], await model.embed_one(texts[i])) > 0.999, i
    assert len({v.tobytes() for v in vectors}) == 200


async def test_local_runs_off_the_event_loop(model: LocalEmbedder) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await model.embed([f"text number {i} about something else" for i in range(256)])
    elapsed = time.perf_counter() - started
    done.set()
    await task
    # A blocked loop would tick once; a free one ticks about every 5 ms of the work.
    assert ticks >= min(10, int(elapsed / 0.005) // 4), (ticks, elapsed)


async def test_local_concurrent_calls_agree(model: LocalEmbedder) -> None:
    texts = [f"concurrent text {i}" for i in range(20)]
    alone = await model.embed(texts)
    results = await asyncio.gather(*(model.embed(texts) for _ in range(4)))
    for result in results:
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(alone, result, strict=True))


async def test_local_embeds_identical_texts_once(model: LocalEmbedder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    forwarded: list[int] = []  # rows of each forward batch
    urgent: list[int] = []  # queries in the model at each batch
    forward = model._forward

    def counting(loaded: Any, ids: list[list[int]]) -> Vector:
        forwarded.append(len(ids))
        urgent.append(model._urgent)
        return forward(loaded, ids)

    monkeypatch.setattr(model, "_forward", counting)
    texts = ["ok", "thanks", "ok", "see you at the lake on Sunday", "thanks", "ok", "ok"]
    vectors = await model.embed(texts)
    assert sum(forwarded) == 3 and urgent == [0] * len(forwarded)  # 7 texts: bulk work
    assert len(vectors) == len(texts)
    for text, vec in zip(texts, vectors, strict=True):
        assert cosine(vec, await model.embed_one(text)) > 0.999, text
    assert all(np.array_equal(vectors[0], vectors[i]) for i in (2, 5, 6))
    assert np.array_equal(vectors[1], vectors[4])
    assert cosine(vectors[0], vectors[1]) < 0.99

    forwarded.clear()
    urgent.clear()
    pair = await model.embed(["hello", "hello"])  # a query however alike its texts
    assert forwarded == [1] and urgent == [1] and np.array_equal(pair[0], pair[1])


def test_local_loads_once_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = LocalEmbedder(threads=1)
    original = embedder._load
    calls = 0

    def slow_load() -> Any:
        nonlocal calls
        calls += 1
        time.sleep(0.05)  # widen the race
        return original()

    monkeypatch.setattr(embedder, "_load", slow_load)
    barrier = threading.Barrier(8)

    def warm() -> None:
        barrier.wait()
        embedder.warm()

    threads = [threading.Thread(target=warm) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    embedder.warm()
    assert calls == 1


async def test_local_check_dimensions(model: LocalEmbedder) -> None:
    await check_dimensions(model, 384)
    with pytest.raises(EmbeddingDimensionError, match="returns 384 dimensions but "
                                                      "EMBEDDING_DIMENSIONS is 768"):
        await check_dimensions(model, 768)


# --- the fake ---------------------------------------------------------------------------------


async def test_fake_is_deterministic_and_unit() -> None:
    a, b = FakeEmbedder(384), FakeEmbedder(384)
    text = "Alice moved to Lisbon in 2021"
    va, vb = await a.embed_one(text), await b.embed_one(text)
    assert np.array_equal(va, vb)
    assert va.shape == (384,) and va.dtype == np.float32
    assert abs(float(np.linalg.norm(va)) - 1) < 1e-5
    assert np.array_equal((await a.embed([text, "x"]))[0], va)
    assert (await FakeEmbedder(16).embed_one(text)).shape == (16,)
    # Case and punctuation do not matter; the empty text still gets a unit vector.
    assert np.allclose(await a.embed_one("ALICE, moved to lisbon in 2021!"), va)
    assert abs(float(np.linalg.norm(await a.embed_one(""))) - 1) < 1e-5


async def test_fake_word_overlap_ranks() -> None:
    fake = FakeEmbedder(384)
    query = await fake.embed_one("hiking in the mountains")
    docs = ["I love hiking in the mountains", "mountains are great for hiking",
            "hiking boots", "the stock market fell", "quarterly earnings report"]
    vectors = await fake.embed(docs)
    scores = [float(query @ v) for v in vectors]
    assert scores[0] > scores[1] > scores[2] > scores[3]
    assert abs(scores[4]) < 0.25  # no shared word: near orthogonal
    assert scores[0] > 0.7


# --- build_embedder and check_dimensions ------------------------------------------------------


def test_build_embedder() -> None:
    fake = build_embedder(settings(provider="fake", dimensions=32))
    assert isinstance(fake, FakeEmbedder) and fake.dimensions == 32
    local = build_embedder(settings(provider="local", threads=1, batch_size=8))
    assert isinstance(local, LocalEmbedder)
    assert (local.threads, local.batch_size, local.dimensions) == (1, 8, 384)
    remote = build_embedder(settings(provider="openai", openai_api_key="k",
                                     openai_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.model_id == OPENAI_DEFAULT_MODEL and remote.send_dimensions
    for embedder in (fake, local, remote):
        assert isinstance(embedder, Embedder)


def test_build_local_refuses_what_it_cannot_do() -> None:
    with pytest.raises(EmbeddingDimensionError, match="768"):
        build_embedder(settings(provider="local", dimensions=768))
    with pytest.raises(ValueError, match="text-embedding-3-small"):
        build_embedder(settings(provider="local", model="text-embedding-3-small"))


async def test_check_dimensions_fake() -> None:
    await check_dimensions(FakeEmbedder(384), 384)
    with pytest.raises(EmbeddingDimensionError,
                       match="'fake-bow' returns 384 dimensions but EMBEDDING_DIMENSIONS is 1536"):
        await check_dimensions(FakeEmbedder(384), 1536)


# --- OpenAI and compatible endpoints, over HTTP -----------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        fake.native_dimensions = 768  # as nomic-embed-text, for models that ignore dimensions
        yield fake


def remote(server: FakeOpenAI, **values: Any) -> OpenAIEmbedder:
    values = {"provider": "openai", "openai_api_key": "test-key",
              "openai_base_url": server.url, **values}
    return OpenAIEmbedder(settings(**values))


def expected(text: str, size: int) -> Vector:
    vec = np.array(FakeOpenAI.vector(text, size), dtype=np.float32)
    out: Vector = vec / np.linalg.norm(vec)
    return out


async def test_openai_batches_in_order(server: FakeOpenAI) -> None:
    embedder = remote(server, model="text-embedding-3-small", dimensions=384, batch_size=3)
    texts = [f"text {i}" for i in range(7)]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.close()
    assert [r["input"] for r in server.bodies] == [texts[0:3], texts[3:6], texts[6:7]]
    assert all(r["model"] == "text-embedding-3-small" and r["dimensions"] == 384
               for r in server.bodies)
    assert server.requests[0].headers["authorization"] == "Bearer test-key"
    assert len(vectors) == 7
    for text, vec in zip(texts, vectors, strict=True):
        assert vec.shape == (384,) and vec.dtype == np.float32
        assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5
        assert np.allclose(vec, expected(text, 384), atol=1e-6)


async def test_openai_sends_identical_texts_once(server: FakeOpenAI) -> None:
    embedder = remote(server, model="text-embedding-3-small", dimensions=384, batch_size=2)
    texts = ["ok", "thanks", "ok", "lunch?", "ok", "thanks"]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.close()
    assert [r["input"] for r in server.bodies] == [["ok", "thanks"], ["lunch?"]]
    assert len(vectors) == len(texts)
    for text, vec in zip(texts, vectors, strict=True):
        assert np.allclose(vec, expected(text, 384), atol=1e-6), text


async def test_openai_float_answers_and_empty_text(server: FakeOpenAI) -> None:
    server.floats_only = True  # a compatible server that ignores encoding_format=base64
    embedder = remote(server, model="text-embedding-3-large", dimensions=256)
    try:
        one = await embedder.embed_one("")
        assert await embedder.embed([]) == []
    finally:
        await embedder.close()
    assert server.bodies[0]["input"] == [" "]  # the API refuses empty strings
    assert np.allclose(one, expected(" ", 256), atol=1e-6)


async def test_openai_compatible_model_gets_no_dimensions(server: FakeOpenAI) -> None:
    embedder = remote(server, model="nomic-embed-text", dimensions=768)
    ada = remote(server, model="text-embedding-ada-002", dimensions=768)
    try:
        await check_dimensions(embedder, 768)
        vec = await ada.embed_one("hello")
    finally:
        await embedder.close()
        await ada.close()
    assert all("dimensions" not in r for r in server.bodies)
    assert vec.shape == (768,)


async def test_openai_dimension_mismatch_is_clear(server: FakeOpenAI) -> None:
    embedder = remote(server, model="nomic-embed-text", dimensions=384)
    try:
        with pytest.raises(EmbeddingDimensionError,
                           match="'nomic-embed-text' returns 768 dimensions but "
                                 "EMBEDDING_DIMENSIONS is 384"):
            await check_dimensions(embedder, 384)
    finally:
        await embedder.close()


async def test_openai_errors_surface(server: FakeOpenAI) -> None:
    """As an EmbeddingError carrying the endpoint's message (the worker logs it in one line,
    as an expected failure), with the SDK's error as its cause."""
    import openai

    embedder = OpenAIEmbedder(settings(provider="openai", model="text-embedding-ada-002",
                                       openai_base_url=server.url), send_dimensions=True)
    try:
        with pytest.raises(EmbeddingError, match="dimensions") as caught:
            await embedder.embed(["hello"])
        assert isinstance(caught.value.__cause__, openai.BadRequestError)
    finally:
        await embedder.close()
