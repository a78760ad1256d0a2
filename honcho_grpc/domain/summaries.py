"""Session summaries: short (every 20 messages by default) and long (every 60), each made of
the previous summary of its tier plus the messages after it. Order-independent: a job whose
message a stored summary already covers does nothing, and an older summary never overwrites
a newer one."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from honcho_grpc.domain.derivation import transcript_line
from honcho_grpc.domain.events import SUMMARY_CREATED
from honcho_grpc.domain.transactions import connection
from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.store import events, memory

# Words asked for: 3/4 of the token budget of each tier (as the original).
MAX_TOKENS = {"short": 1000, "long": 4000}
# New messages read at most (the newest win); the previous summary stands for the rest.
MAX_INPUT_TOKENS = 12_000
MIN_WORDS = 40


@dataclass
class Input:
    """What a summary up to one message is made from."""

    previous: str  # the tier's stored summary ("" if none)
    lines: list[str]  # the messages after it, as transcript lines
    words: int  # how long the summary may be
    last_message_id: str
    last_message_seq: int


async def read_input(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                     summary_type: str, upto_seq: int) -> Input | None:
    """None when a stored summary of the tier reaches `upto_seq` already, or there is no
    message to summarise."""
    async with connection(pool) as conn:
        prev = (await memory.summaries(conn, workspace_id, session_id)).get(summary_type)
        after = prev.last_message_seq if prev else 0
        if after >= upto_seq:
            return None
        rows = await memory.messages_to_summarize(conn, workspace_id, session_id, after,
                                                  upto_seq, MAX_INPUT_TOKENS)
    if not rows:
        return None
    words = max(MIN_WORDS, int(0.75 * min(sum(r.token_count for r in rows),
                                          MAX_TOKENS[summary_type])))
    if summary_type == "long":
        words = int(0.75 * MAX_TOKENS[summary_type])
    return Input(prev.content if prev else "",
                 [transcript_line(r.created_at, r.peer_id, r.content) for r in rows],
                 words, rows[-1].message_id, rows[-1].seq)


async def save(conn: asyncpg.Connection, workspace_id: str, session_id: str, summary_type: str,
               text: str, source: Input) -> bool:
    """Store the summary unless a newer one is stored (or the session is gone), and tell
    watchers; True if stored."""
    text = text or f"Conversation with {len(source.lines)} messages."
    stored = await memory.save_summary(conn, workspace_id, session_id, summary_type, text,
                                       source.last_message_id, source.last_message_seq,
                                       count_tokens(text))
    if stored:
        await events.emit(conn, SUMMARY_CREATED, workspace_id, session_id=session_id,
                          data={"summary_type": summary_type,
                                "last_message_id": source.last_message_id,
                                "last_message_seq": source.last_message_seq})
    return stored
