"""Session summaries: short (every 20 messages) and long (every 60), each the previous summary
of its tier plus the messages after it. Order-independent: a job whose message an existing
summary already covers does nothing, and an older summary never overwrites a newer one."""

from __future__ import annotations

from typing import Any

from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.worker import events
from honcho_grpc.worker.db import Conn
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.tasks import PermanentError, Result, TaskContext
from honcho_grpc.worker.tasks.common import transcript_line

# Words asked for: 3/4 of the token budget of each tier (as the original).
MAX_TOKENS = {"short": 1000, "long": 4000}
# New messages read at most (the newest win); the previous summary stands for the rest.
MAX_INPUT_TOKENS = 12_000
MIN_WORDS = 40


async def run(ctx: TaskContext, jobs: list[Job]) -> Result:
    job = jobs[0]
    kind = str(job.payload.get("summary_type"))
    if kind not in MAX_TOKENS or job.session_id is None:
        raise PermanentError(f"malformed summary payload: {job.payload}")
    target = int(job.payload.get("seq", 0))
    ws, session = job.workspace_id, job.session_id
    async with ctx.pool.connection() as conn:
        prev = await (await conn.execute(
            "SELECT content, last_message_seq FROM summaries WHERE workspace_id = %s "
            "AND session_id = %s AND summary_type = %s", (ws, session, kind))).fetchone()
        if prev and prev["last_message_seq"] >= target:
            return Result()
        rows = await _new_messages(conn, ws, session, prev["last_message_seq"] if prev else 0,
                                   target)
    if not rows:
        return Result()
    input_tokens = sum(r["token_count"] for r in rows)
    words = max(MIN_WORDS, int(0.75 * min(input_tokens, MAX_TOKENS[kind])))
    if kind == "long":
        words = int(0.75 * MAX_TOKENS[kind])
    text, usage = await ctx.reasoner.summarize(kind, prev["content"] if prev else "",
                                               [transcript_line(r) for r in rows], words)
    if not text:
        text = f"Conversation with {len(rows)} messages."
    last = rows[-1]

    async def apply(conn: Conn) -> None:
        cur = await conn.execute(
            "INSERT INTO summaries (workspace_id, session_id, summary_type, content, "
            "last_message_id, last_message_seq, token_count) "
            "SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM sessions "
            "WHERE workspace_id = %s AND session_id = %s FOR KEY SHARE) "
            "ON CONFLICT (workspace_id, session_id, summary_type) DO UPDATE SET "
            "content = EXCLUDED.content, last_message_id = EXCLUDED.last_message_id, "
            "last_message_seq = EXCLUDED.last_message_seq, token_count = EXCLUDED.token_count, "
            "created_at = now() WHERE summaries.last_message_seq < EXCLUDED.last_message_seq",
            (ws, session, kind, text, last["message_id"], last["seq"], count_tokens(text),
             ws, session))
        if cur.rowcount:
            await events.emit(conn, events.SUMMARY_CREATED, ws, session_id=session,
                              data={"summary_type": kind, "last_message_id": last["message_id"],
                                    "last_message_seq": last["seq"]})

    return Result(usage=usage, apply=apply)


async def _new_messages(conn: Conn, ws: str, session: str, after: int,
                        upto: int) -> list[dict[str, Any]]:
    """Messages in (after, upto], the newest ones within the input budget, oldest first."""
    rows = await (await conn.execute(
        """
        SELECT * FROM (
            SELECT message_id, seq, peer_id, content, created_at, token_count,
                   sum(token_count) OVER (ORDER BY seq DESC) AS running
            FROM messages WHERE workspace_id = %s AND session_id = %s
              AND seq > %s AND seq <= %s
            ORDER BY seq DESC LIMIT 2000
        ) recent WHERE running <= %s OR seq = %s ORDER BY seq
        """, (ws, session, after, upto, MAX_INPUT_TOKENS, upto))).fetchall()
    return list(rows)
