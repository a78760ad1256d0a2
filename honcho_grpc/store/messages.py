"""SQL for messages: batch insert with gap-free sequence numbers, reads, metadata updates."""

from __future__ import annotations

from honcho_grpc.model import Json, Member, Message, MessageRef, NewMessage, OpenBatch, Page
from honcho_grpc.store import Conn, Executor, backlog, search_stats
from honcho_grpc.store import filters as f
from honcho_grpc.store.pages import binding, keyset_page
from honcho_grpc.store.rows import columns, every, one

# Never `SELECT *`: the generated tsvector column has no binary codec and is internal. Reads
# leave out the configuration and internal metadata, whose JSON only writes need (two jsonb
# decodes per row less on every page, search and context).
COLUMNS = columns(Message)
M_COLUMNS = columns(Message, "m")


async def open_batch(conn: Conn, workspace_id: str, session_id: str, authors: list[str],
                     count: int) -> OpenBatch:
    """Create the workspace, session and authors when missing, make the authors members and
    take `count` sequence numbers, in one round trip (migration 0014 says why and in which
    order). The session row stays locked until commit: concurrent writers to one session
    queue up and the numbers stay gap-free (a rollback returns them)."""
    row = await conn.fetchrow("SELECT * FROM honcho_open_message_batch($1, $2, $3, $4)",
                              workspace_id, session_id, sorted(set(authors)), count)
    assert row is not None and row["first_seq"] is not None, "the session row exists"
    members = [Member(*m) for m in zip(row["member_ids"], row["member_active"],
                                       row["member_observe_me"], row["member_observe_others"],
                                       strict=True)]
    return OpenBatch(int(row["first_seq"]), row["session_configuration"],
                     row["workspace_configuration"], members, row["written_at"])


COPY_COLUMNS = ["workspace_id", "message_id", "session_id", "peer_id", "seq", "content",
                "metadata", "configuration", "internal_metadata", "token_count", "created_at"]


async def insert_messages(conn: Conn, workspace_id: str, session_id: str, batch: OpenBatch,
                          messages: list[NewMessage]) -> list[Message]:
    """Store the messages (the i-th gets sequence number first_seq + i), enter them in the
    embedding backlog and wake the embedder (as backlog.add does), in one statement. Nothing
    is read back: the stored rows are what was sent, stamped with the transaction's time
    when they have none of their own (decoding the rows again cost a tenth of a
    CreateMessages call)."""
    seqs = list(range(batch.first_seq, batch.first_seq + len(messages)))
    times = [m.created_at or batch.written_at for m in messages]
    await conn.execute(
        """
        WITH stored AS (
            INSERT INTO messages (workspace_id, message_id, session_id, peer_id, seq, content,
                                  metadata, configuration, internal_metadata, token_count,
                                  created_at)
            SELECT $1, m.id, $2, m.peer, m.seq, m.content, m.meta, m.conf, m.internal,
                   m.tokens, m.created
            FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::jsonb[],
                        $8::jsonb[], $9::jsonb[], $10::int[], $11::timestamptz[])
                 AS m(id, peer, seq, content, meta, conf, internal, tokens, created)
            RETURNING message_id),
        entered AS (
            INSERT INTO embedding_backlog (workspace_id, message_id)
            SELECT $1, message_id FROM stored RETURNING 1)
        SELECT pg_notify($12, '') WHERE EXISTS (SELECT FROM entered)
        """,
        workspace_id, session_id,
        [m.message_id for m in messages], [m.peer_id for m in messages], seqs,
        [m.content for m in messages], [m.metadata for m in messages],
        [m.configuration for m in messages], [m.internal_metadata or {} for m in messages],
        [m.token_count for m in messages], times, backlog.EMBED_CHANNEL,
    )
    return [Message(workspace_id, m.message_id, session_id, m.peer_id, seq, m.content,
                    m.metadata, m.token_count, at)
            for m, seq, at in zip(messages, seqs, times, strict=True)]


async def copy_messages(conn: Conn, workspace_id: str, session_id: str, batch: OpenBatch,
                        messages: list[NewMessage]) -> None:
    """insert_messages for imports: binary COPYs (the messages, then their backlog rows),
    faster than the INSERT for large chunks."""
    await conn.copy_records_to_table(
        "messages", columns=COPY_COLUMNS, records=[
            (workspace_id, m.message_id, session_id, m.peer_id, batch.first_seq + i, m.content,
             m.metadata, m.configuration, m.internal_metadata or {}, m.token_count,
             m.created_at or batch.written_at)
            for i, m in enumerate(messages)])
    await backlog.add(conn, workspace_id, [m.message_id for m in messages])


async def get_message(conn: Executor, workspace_id: str, session_id: str,
                      message_id: str) -> Message | None:
    return one(Message, await conn.fetchrow(
        f"SELECT {COLUMNS} FROM messages WHERE workspace_id = $1 AND session_id = $2 "
        "AND message_id = $3", workspace_id, session_id, message_id,
    ))


async def message_seq(conn: Executor, workspace_id: str, session_id: str,
                      message_id: str) -> int | None:
    seq: int | None = await conn.fetchval(
        "SELECT seq FROM messages WHERE workspace_id = $1 AND session_id = $2 "
        "AND message_id = $3", workspace_id, session_id, message_id)
    return seq


async def list_messages(conn: Executor, workspace_id: str, session_id: str,
                        filters: Json | None, reverse: bool, page_size: int,
                        token: str) -> Page[Message]:
    params = f.Params()
    where = (f"m.workspace_id = {params.add(workspace_id)} AND "
             f"m.session_id = {params.add(session_id)} AND "
             + f.compile_filter(filters, f.message_filters("m"), params))
    return await keyset_page(
        conn, Message, select=f"SELECT {M_COLUMNS} FROM messages m", where=where, params=params,
        order=("m.seq",), reverse=reverse, page_size=page_size, token=token,
        bound_to=binding("messages", workspace_id, session_id, filters, reverse),
    )


async def update_metadata(conn: Executor, workspace_id: str, session_id: str, message_id: str,
                          metadata: Json) -> Message | None:
    return one(Message, await conn.fetchrow(
        f"UPDATE messages SET metadata = $4 WHERE workspace_id = $1 AND session_id = $2 "
        f"AND message_id = $3 RETURNING {COLUMNS}", workspace_id, session_id, message_id,
        metadata,
    ))


async def delete_message(conn: Conn, workspace_id: str, session_id: str,
                         message_id: str) -> bool:
    """The embedding and backlog rows go by foreign key; queued jobs about the message and
    summaries that include it are removed here; the caller deletes derived conclusions
    (store/conclusions.delete_conclusions_derived_from)."""
    await conn.execute(
        "DELETE FROM queue WHERE workspace_id = $1 AND session_id = $2 "
        "AND payload->>'message_id' = $3 AND status IN ('pending', 'failed')",
        workspace_id, session_id, message_id,
    )
    condition = "m.session_id = $2 AND m.message_id = $3"
    await search_stats.uncount_where(conn, workspace_id, condition, session_id, message_id)
    await backlog.forget_where(conn, workspace_id, condition, session_id, message_id)
    seq = await conn.fetchval(
        "DELETE FROM messages WHERE workspace_id = $1 AND session_id = $2 AND message_id = $3 "
        "RETURNING seq", workspace_id, session_id, message_id,
    )
    if seq is None:
        return False
    # Summaries chain forward, so every summary reaching this message has read its content.
    await conn.execute(
        "DELETE FROM summaries WHERE workspace_id = $1 AND session_id = $2 "
        "AND last_message_seq >= $3", workspace_id, session_id, seq,
    )
    return True


async def lock_messages(conn: Conn, workspace_id: str, message_ids: list[str]) -> list[str]:
    """Those of the messages that exist, share-locked until the transaction ends, so that a
    concurrent delete waits for what is written about them and then cascades over it."""
    rows = await conn.fetch(
        "SELECT message_id FROM messages WHERE workspace_id = $1 "
        "AND message_id = ANY($2::text[]) FOR KEY SHARE", workspace_id, message_ids)
    return [r["message_id"] for r in rows]


async def copy_session_messages(conn: Conn, workspace_id: str, source_id: str, target_id: str,
                                id_prefix: str, up_to_seq: int | None) -> list[MessageRef]:
    """Copy the source session's messages (up to `up_to_seq`, inclusive, or all) into the
    target with the same sequence numbers and new ids (`id_prefix` + the number)."""
    rows = await conn.fetch(
        """
        INSERT INTO messages (workspace_id, message_id, session_id, peer_id, seq, content,
                              metadata, configuration, internal_metadata, token_count, created_at)
        SELECT workspace_id, $4 || lpad(seq::text, 10, '0'), $3, peer_id, seq, content,
               metadata, configuration, internal_metadata, token_count, created_at
        FROM messages WHERE workspace_id = $1 AND session_id = $2
          AND ($5::bigint IS NULL OR seq <= $5)
        RETURNING seq, peer_id, message_id
        """,
        workspace_id, source_id, target_id, id_prefix, up_to_seq)
    return every(MessageRef, rows)
