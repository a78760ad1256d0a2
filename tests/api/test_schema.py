"""Opening a database whose vector columns have another size than the embedding model's:
an empty one is adapted, one holding vectors is refused until they are reset."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from honcho_grpc.db.pool import DatabaseConfigError, open_database
from honcho_grpc.domain.embedding import warn_of_other_models
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.store import schema
from tests.cli.cli_process import honcho
from tests.conftest import make_settings
from tests.postgres_process import PostgresProcess


async def columns_sized(dsn: str) -> set[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {await schema.vector_dimensions(conn, *c) for c in schema.EMBEDDING_COLUMNS}
    finally:
        await conn.close()


async def column_types(dsn: str) -> dict[str, str]:
    """Each vector column's type: messages' vectors are stored in half precision (their
    HNSW index is half the size; migration 0011), conclusions' in full."""
    conn = await asyncpg.connect(dsn)
    try:
        return {table: await conn.fetchval(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = $1::regclass AND attname = $2", table, column)
            for table, column in schema.EMBEDDING_COLUMNS}
    finally:
        await conn.close()


async def test_vector_size_changes_only_over_an_explicit_reset(
        own_postgres: tuple[PostgresProcess, str]) -> None:
    _, dsn = own_postgres
    db = await open_database(make_settings(dsn, embedding={"dimensions": 8}))
    await db.close()
    assert await columns_sized(dsn) == {8}  # empty: adapted silently

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ('w')")
        await conn.execute("INSERT INTO peers (workspace_id, peer_id) VALUES ('w', 'p')")
        await conn.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "content, embedding) VALUES ('w', 'c', 'p', 'p', 'x', '[1,0,0,0,0,0,0,0]')")
        with pytest.raises(DatabaseConfigError, match="stores 8-dimensional embeddings"):
            await open_database(make_settings(dsn, embedding={"dimensions": 4}))
        await schema.reset_embeddings(conn, 4)
        assert await schema.stored_vectors(conn) == 0
    finally:
        await conn.close()
    db = await open_database(make_settings(dsn, embedding={"dimensions": 4}))
    await db.close()
    assert await columns_sized(dsn) == {4}
    assert await column_types(dsn) == {"message_embeddings": "halfvec(4)",
                                       "conclusions": "vector(4)"}  # kept over the reset


async def test_a_reset_re_embeds_conclusions(own_postgres: tuple[PostgresProcess, str],
                                             tmp_path: Path) -> None:
    """`migrate --reset-embeddings` clears every vector. Messages go back to the backlog;
    conclusions have none, so the command embeds them again with the configured model (a
    conclusion without a vector drops out of semantic queries and the dialectic's search)."""
    _, dsn = own_postgres
    db = await open_database(make_settings(dsn, embedding={"dimensions": 8}))
    await db.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspaces (workspace_id) VALUES ('w'), ('v')")
        await conn.execute("INSERT INTO peers (workspace_id, peer_id) VALUES ('w', 'p'), "
                           "('v', 'p')")
        await conn.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "content, embedding, model) SELECT ws, 'c' || i, 'p', 'p', 'fact ' || i, "
            "'[1,0,0,0,0,0,0,0]', 'old' FROM unnest(ARRAY['w', 'v']) ws, "
            "generate_series(1, 300) i")
    finally:
        await conn.close()

    done = honcho("migrate", "--reset-embeddings", cwd=tmp_path, timeout=120,
                  DB_CONNECTION_URI=dsn, EMBEDDING_PROVIDER="fake", EMBEDDING_DIMENSIONS="4")
    assert done.returncode == 0, done.stderr
    assert "600 conclusions re-embedded with fake-bow" in done.stdout, done.stdout

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT content, model, embedding::text FROM conclusions")
    finally:
        await conn.close()
    expected = FakeEmbedder(4)
    assert len(rows) == 600 and {r["model"] for r in rows} == {"fake-bow"}
    for row in rows[:20]:
        assert np.allclose(json.loads(row["embedding"]),
                           await expected.embed_one(row["content"]),
                           atol=1e-6)


async def test_start_up_says_when_stored_vectors_are_another_model_s(
        own_postgres: tuple[PostgresProcess, str], caplog: pytest.LogCaptureFixture) -> None:
    _, dsn = own_postgres
    db = await open_database(make_settings(dsn, embedding={"dimensions": 8}))
    try:
        assert await warn_of_other_models(db.pool, "new-model") == []  # nothing stored yet
        await db.pool.execute("INSERT INTO workspaces (workspace_id) VALUES ('w')")
        await db.pool.execute("INSERT INTO peers (workspace_id, peer_id) VALUES ('w', 'p')")
        await db.pool.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "content, embedding, model) VALUES ('w', 'c', 'p', 'p', 'x', "
            "'[1,0,0,0,0,0,0,0]', 'old-model')")
        with caplog.at_level(logging.WARNING, logger="honcho_grpc.domain.embedding"):
            assert await warn_of_other_models(db.pool, "new-model") == ["old-model"]
        assert "made by old-model, not by the running model new-model" in caplog.text
        assert "--reset-embeddings" in caplog.text
        assert await warn_of_other_models(db.pool, "old-model") == []
    finally:
        await db.close()
