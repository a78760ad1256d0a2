"""SQL about the schema itself, run when the database is opened: the pgvector version, the
size of the vector columns, and dropping stored vectors when that size changes. (Migrations
are db/migrations/*.sql, applied by db/pool.apply_migrations.)"""

from __future__ import annotations

from honcho_grpc.store import Conn, Executor

# Every vector column: all sized to the embedding model's output.
EMBEDDING_COLUMNS = (("message_embeddings", "embedding"), ("conclusions", "embedding"))


async def pgvector_version(conn: Conn) -> str | None:
    """The installed (else the available) pgvector version; None without pgvector."""
    version: str | None = await conn.fetchval(
        "SELECT coalesce(e.extversion, a.default_version) FROM pg_available_extensions a "
        "LEFT JOIN pg_extension e ON e.extname = a.name WHERE a.name = 'vector'"
    )
    return version


async def vector_dimensions(conn: Conn, table: str, column: str) -> int:
    return int(await conn.fetchval(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
        table, column,
    ))


async def stored_vectors(conn: Conn) -> int:
    return int(await conn.fetchval(
        "SELECT (SELECT count(*) FROM message_embeddings) + "
        "(SELECT count(*) FROM conclusions WHERE embedding IS NOT NULL)"
    ))


VECTOR_SAMPLE = 1000  # rows of each table looked at (the oldest, usually) at start-up


async def other_models(conn: Executor, model: str) -> list[str]:
    """Models other than `model` among a bounded sample of stored vectors (the first rows of
    each table): cheap at any size, and what an upgrade leaves behind is the oldest rows."""
    rows = await conn.fetch(
        "SELECT DISTINCT model FROM ("
        f" (SELECT model FROM message_embeddings LIMIT {VECTOR_SAMPLE})"
        f" UNION ALL (SELECT model FROM conclusions WHERE embedding IS NOT NULL"
        f" LIMIT {VECTOR_SAMPLE})) s WHERE model IS DISTINCT FROM $1 ORDER BY 1", model)
    return [r["model"] or "(unrecorded)" for r in rows]


async def reset_embeddings(conn: Conn, dims: int) -> None:
    """Drop every stored vector, resize the columns and put all messages back in the backlog."""
    async with conn.transaction():
        await conn.execute("DELETE FROM message_embeddings")
        # Messages are counted in the search statistics as they are embedded: re-embedding
        # them all counts them again from zero.
        await conn.execute("TRUNCATE lexeme_stats, search_stats, scope_stats")
        await conn.execute("UPDATE conclusions SET embedding = NULL, model = NULL "
                           "WHERE embedding IS NOT NULL")
        for table, column in EMBEDDING_COLUMNS:
            # Each column keeps its type (messages' vectors are halfvec, conclusions' vector).
            kind = await conn.fetchval(
                "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = $1::regclass AND a.attname = $2", table, column)
            await conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind}({dims:d})")
        await conn.execute(
            "INSERT INTO embedding_backlog (workspace_id, message_id) "
            "SELECT workspace_id, message_id FROM messages ON CONFLICT DO NOTHING"
        )
