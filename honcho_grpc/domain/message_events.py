"""`messages.created`, the one event whose content the domain decides: sent by every path
that stores messages (CreateMessages, an import chunk, a cloned session)."""

from __future__ import annotations

from collections.abc import Sequence

from honcho_grpc.domain.events import MESSAGES_CREATED
from honcho_grpc.model import MessageRef
from honcho_grpc.store import Conn, events


async def announce_created(conn: Conn, workspace_id: str, session_id: str,
                           created: Sequence[MessageRef]) -> None:
    """`messages.created` for watchers: one event per stored batch (a CreateMessages call, an
    import chunk, a cloned session) with its count, sequence range, authors (10 at most) and
    the ids of its first 20 messages; `peer_id` is the author when there is only one."""
    if not created:
        return
    ordered = sorted(created)
    authors = sorted({c.peer_id for c in created})
    await events.emit(conn, MESSAGES_CREATED, workspace_id, session_id=session_id,
                      peer_id=authors[0] if len(authors) == 1 else "", peers=authors[:10],
                      data={"count": len(created), "first_seq": ordered[0].seq,
                            "last_seq": ordered[-1].seq,
                            "message_ids": [c.message_id for c in ordered[:20]]})
