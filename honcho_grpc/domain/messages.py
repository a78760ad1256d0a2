"""Messages: writing them is one transaction that stores the batch, joins its authors to
the session, adds the messages to the embedding backlog, enqueues the background work they
cause (reasoning about each sender, summaries every N messages) and tells watchers. Deleting
one removes what was derived from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple

import asyncpg

from honcho_grpc.domain import activity, sessions
from honcho_grpc.domain.config import effective
from honcho_grpc.domain.files import Upload
from honcho_grpc.domain.idempotent import R, Retry, run_write
from honcho_grpc.domain.message_events import announce_created
from honcho_grpc.domain.transactions import transaction
from honcho_grpc.errors import not_found, resource_exhausted
from honcho_grpc.ids import new_id
from honcho_grpc.model import (
    Json,
    Message,
    MessageDraft,
    MessageRef,
    NewMessage,
    OpenBatch,
    Page,
)
from honcho_grpc.providers.tokens import count_tokens_batch
from honcho_grpc.settings import Settings
from honcho_grpc.store import Conn, conclusions, queue
from honcho_grpc.store import messages as store
from honcho_grpc.store.queue import Job
from honcho_grpc.work_units import (
    RepresentationPayload,
    SummaryPayload,
    SummaryType,
    TaskType,
    representation_key,
    summary_key,
)

MAX_BATCH = 100          # messages per CreateMessages
MAX_IMPORT_CHUNK = 1000  # messages per ImportMessages request


class ImportBatch(NamedTuple):
    workspace_id: str
    session_id: str
    messages: list[MessageDraft]


def prepare(drafts: Sequence[MessageDraft]) -> list[NewMessage]:
    """Ids and token counts (counted as one batch: much cheaper than one by one)."""
    counts = count_tokens_batch([d.content for d in drafts])
    return [NewMessage(message_id=new_id(), peer_id=d.peer_id, content=d.content,
                       metadata=d.metadata, configuration=d.configuration, token_count=tokens,
                       created_at=d.created_at)
            for d, tokens in zip(drafts, counts, strict=True)]


async def create(pool: asyncpg.Pool, settings: Settings, workspace_id: str, session_id: str,
                 drafts: Sequence[MessageDraft], retry: Retry[R],
                 respond: Callable[[list[Message]], R]) -> R:
    """Store a batch (creating the workspace, session and authors when missing)."""
    with activity.writing():
        batch = prepare(drafts)

        async def write(conn: Conn) -> R:
            return respond(await write_messages(conn, settings, workspace_id, session_id,
                                                batch))

        return await run_write(pool, workspace_id, retry, write)


async def import_batches(pool: asyncpg.Pool, settings: Settings,
                         batches: AsyncIterator[ImportBatch]) -> tuple[int, int]:
    """Bulk load, all in one transaction: it lands completely or not at all. The whole
    stream is read (validated by the caller's iterator, prepared here) before the transaction
    opens, so a client that stalls mid-stream holds memory, never a database connection; at
    most APP_MAX_IMPORT_MESSAGES messages a stream. Returns (messages, distinct sessions)."""
    limit = settings.app.max_import_messages
    buffered: list[tuple[str, str, list[NewMessage]]] = []
    total = 0
    async for b in batches:
        total += len(b.messages)
        if total > limit:
            raise resource_exhausted(
                f"an import stream carries at most {limit} messages; split it into several "
                "streams", "IMPORT_TOO_LARGE", limit=str(limit))
        buffered.append((b.workspace_id, b.session_id, prepare(b.messages)))
    seen: set[tuple[str, str]] = set()
    with activity.writing():
        async with transaction(pool) as conn:
            for workspace_id, session_id, batch in buffered:
                await _import(conn, settings, workspace_id, session_id, batch)
                seen.add((workspace_id, session_id))
    return total, len(seen)


async def upload_file(pool: asyncpg.Pool, settings: Settings, upload: Upload,
                      chunks: list[str]) -> list[Message]:
    """A file's text chunks as messages of one peer; each records which file it came from."""
    file_id = new_id()
    batch = prepare([MessageDraft(upload.peer_id, chunk, upload.metadata, upload.configuration,
                                  upload.created_at) for chunk in chunks])
    for i, message in enumerate(batch):
        message.internal_metadata = {
            "file_id": file_id, "filename": upload.filename, "chunk_index": i,
            "total_chunks": len(chunks), "content_type": upload.content_type,
            "file_bytes": upload.size}
    async with transaction(pool) as conn:
        return await write_messages(conn, settings, upload.workspace_id, upload.session_id,
                                    batch)


async def get(pool: asyncpg.Pool, workspace_id: str, session_id: str,
              message_id: str) -> Message:
    found = await store.get_message(pool, workspace_id, session_id, message_id)
    if found is None:
        raise _not_found(workspace_id, session_id, message_id)
    return found


async def list_messages(pool: asyncpg.Pool, workspace_id: str, session_id: str,
                        filters: Json | None, reverse: bool, page_size: int,
                        token: str) -> Page[Message]:
    """In sequence order. An empty first page checks that the session exists (NOT_FOUND
    otherwise); a full one proves it."""
    page = await store.list_messages(pool, workspace_id, session_id, filters, reverse,
                                     page_size, token)
    if not page.items and not token:
        await sessions.require(pool, workspace_id, session_id)
    return page


async def update(pool: asyncpg.Pool, workspace_id: str, session_id: str, message_id: str,
                 changes: Json) -> Message:
    """Only the metadata of a message changes; no changes: the message as it is."""
    if "metadata" in changes:
        found = await store.update_metadata(pool, workspace_id, session_id, message_id,
                                            changes["metadata"])
    else:
        found = await store.get_message(pool, workspace_id, session_id, message_id)
    if found is None:
        raise _not_found(workspace_id, session_id, message_id)
    return found


async def delete(pool: asyncpg.Pool, workspace_id: str, session_id: str, message_id: str,
                 retry: Retry[R]) -> R:
    """The message, its embedding, queued work about it, the summaries that read it and the
    conclusions drawn from it (and those built on them) go."""
    async def write(conn: Conn) -> R:
        await conclusions.delete_conclusions_derived_from(conn, workspace_id,
                                                          message_ids=[message_id])
        if not await store.delete_message(conn, workspace_id, session_id, message_id):
            raise _not_found(workspace_id, session_id, message_id)
        return retry.response_type()

    return await run_write(pool, workspace_id, retry, write)


def _not_found(workspace_id: str, session_id: str, message_id: str) -> Exception:
    return not_found("message", workspaceId=workspace_id, sessionId=session_id,
                     messageId=message_id)


# -- writing ---------------------------------------------------------------------------------

async def write_messages(conn: Conn, settings: Settings, workspace_id: str, session_id: str,
                         batch: Sequence[NewMessage]) -> list[Message]:
    """Store a batch atomically (the caller owns the transaction); returns the messages."""
    opened = await store.open_batch(conn, workspace_id, session_id,
                                    [m.peer_id for m in batch], len(batch))
    stored = await store.insert_messages(conn, workspace_id, session_id, opened, list(batch))
    await _follow_up(conn, settings, workspace_id, session_id, opened, batch)
    return stored


async def _import(conn: Conn, settings: Settings, workspace_id: str, session_id: str,
                  batch: Sequence[NewMessage]) -> None:
    """write_messages for bulk loads, which answer with counts: the messages are copied in
    (binary COPY), and nothing is read back."""
    opened = await store.open_batch(conn, workspace_id, session_id,
                                    [m.peer_id for m in batch], len(batch))
    await store.copy_messages(conn, workspace_id, session_id, opened, list(batch))
    await _follow_up(conn, settings, workspace_id, session_id, opened, batch)


async def _follow_up(conn: Conn, settings: Settings, workspace_id: str, session_id: str,
                     opened: OpenBatch, batch: Sequence[NewMessage]) -> None:
    """What stored messages cause besides their place in the embedding backlog: the
    background jobs and the watchers' event."""
    jobs = _jobs_for(settings, workspace_id, session_id, opened, batch)
    await queue.enqueue(conn, workspace_id, jobs)
    await queue.hold_for_batch(
        conn, workspace_id,
        [j.work_unit_key for j in jobs if j.task_type == TaskType.REPRESENTATION],
        wait_seconds=settings.queue.batch_wait_seconds,
        min_tokens=settings.queue.batch_min_tokens,
        idle_seconds=settings.queue.batch_idle_seconds)
    await announce_created(conn, workspace_id, session_id,
                           [MessageRef(opened.first_seq + i, m.peer_id, m.message_id)
                            for i, m in enumerate(batch)])


def _jobs_for(settings: Settings, workspace_id: str, session_id: str, opened: OpenBatch,
              batch: Sequence[NewMessage]) -> list[Job]:
    """Representation jobs (who observes each sender) and summary jobs (every N messages)."""
    watchers = [m.peer_id for m in opened.members if m.active and m.observe_others]
    observed_ok = {m.peer_id: m.observe_me for m in opened.members}
    configs = (opened.workspace_configuration, opened.session_configuration)
    jobs: list[Job] = []
    # Most messages carry no configuration of their own: resolve the session's once.
    inherited = effective(settings, *configs, None)
    for seq, message in enumerate(batch, start=opened.first_seq):
        config = (effective(settings, *configs, message.configuration)
                  if message.configuration else inherited)
        sender = message.peer_id
        if config.reasoning_enabled and observed_ok.get(sender, True):
            # The sender and every member observing others (how many may is checked where
            # memberships are set: domain/sessions.check_observers).
            observers = [sender] + [w for w in watchers if w != sender]
            jobs.append(Job(
                task_type=TaskType.REPRESENTATION, session_id=session_id,
                work_unit_key=representation_key(workspace_id, session_id, sender),
                payload=RepresentationPayload(
                    message_id=message.message_id, seq=seq, observed=sender,
                    observers=observers,
                    custom_instructions=config.custom_instructions),
            ))
        if not config.summary_enabled:
            continue
        tiers: tuple[tuple[SummaryType, int], ...] = (("short", config.short_every),
                                                      ("long", config.long_every))
        for kind, every in tiers:
            if every > 0 and seq % every == 0:
                jobs.append(Job(
                    task_type=TaskType.SUMMARY, session_id=session_id,
                    work_unit_key=summary_key(workspace_id, session_id, kind),
                    payload=SummaryPayload(summary_type=kind, message_id=message.message_id,
                                           seq=seq, every=every),
                ))
    return jobs
