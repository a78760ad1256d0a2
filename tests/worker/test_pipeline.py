"""The derivation pipeline end to end with the offline model: CreateMessages -> queue ->
worker -> conclusions, summaries, peer cards, dreams."""

from __future__ import annotations

from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    message_pb2,
    peer_pb2,
    resources_pb2,
    session_pb2,
)

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings


async def say(stubs: Stubs, ws: str, session: str, *lines: tuple[str, str]) -> list[str]:
    r = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id=session,
        messages=[message_pb2.MessageInput(peer_id=p, content=c) for p, c in lines]))
    return [m.id for m in r.messages]


async def conclusions(db: Database, ws: str) -> list[dict[str, object]]:
    rows = await db.pool.fetch(
        "SELECT observer_id, observed_id, content, level, times_derived, source_message_ids, "
        "premise_ids, invalidated_at, superseded_by, conclusion_id FROM conclusions "
        "WHERE workspace_id = $1 ORDER BY created_at, content", ws)
    return [dict(r) for r in rows]


async def test_messages_become_conclusions(stubs: Stubs, db: Database, pg_dsn: str,
                                           ws: str) -> None:
    ids = await say(stubs, ws, "s1", ("alice", "I love hiking in the Alps."),
                    ("bob", "Nice! Where do you live?"),
                    ("alice", "I live in Lyon and my sister is called Emma."))
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await eventually(lambda: _none_open(db, ws))
    rows = await conclusions(db, ws)
    mine = {r["content"] for r in rows if r["observed_id"] == "alice"}
    assert "alice loves hiking in the Alps" in mine
    assert any("Lyon" in c for c in mine)
    for r in rows:
        assert r["level"] == "explicit" and r["observer_id"] == r["observed_id"]
        assert set(r["source_message_ids"]) <= set(ids)
    done = await queue_rows(db.pool, ws)
    assert {r["status"] for r in done} == {"completed"}
    assert all(r["usage"] is not None for r in done)
    card = await stubs.peers.GetPeerCard(peer_pb2.GetPeerCardRequest(
        workspace_id=ws, peer_id="alice"))
    assert card.exists and any("Lyon" in e for e in card.entries), card


async def _none_open(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return bool(rows) and all(r["status"] == "completed" for r in rows)


async def test_observers_and_repeats(stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s"))
    await stubs.sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=ws, session_id="s", peers={
            "alice": resources_pb2.SessionPeerConfiguration(),
            "bob": resources_pb2.SessionPeerConfiguration(observe_others=True)}))
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await say(stubs, ws, "s", ("alice", "I drink green tea every morning."))
        await eventually(lambda: _none_open(db, ws))
        await say(stubs, ws, "s", ("alice", "I   drink Green tea every morning!"))
        await eventually(lambda: _none_open(db, ws))
    rows = [r for r in await conclusions(db, ws) if "green tea" in str(r["content"]).lower()]
    # One conclusion per observer (alice's own view and bob's), reinforced by the repeat.
    assert sorted(r["observer_id"] for r in rows) == ["alice", "bob"]
    assert all(r["times_derived"] == 2 for r in rows), rows


async def test_summaries_every_twenty(stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    lines = [("alice" if i % 2 else "bob", f"Message {i}: I walked {i} kilometres today.")
             for i in range(1, 66)]
    await say(stubs, ws, "s", *lines)
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await eventually(lambda: _none_open(db, ws))
    r = await stubs.sessions.GetSummaries(session_pb2.GetSummariesRequest(
        workspace_id=ws, session_id="s"))
    assert r.short_summary.last_message_sequence == 60
    assert r.long_summary.last_message_sequence == 60
    assert "kilometres" in r.short_summary.content
    # Each tier chains on its previous summary: three short ones were written, in order.
    rows = await queue_rows(db.pool, ws)
    assert sum(r["task_type"] == "summary" for r in rows) == 4


def unspaced(i: int, chars: int = 2000) -> str:
    """A message of `chars` characters with no space in it, as Chinese or Japanese is
    written: to a summary that copies words, one word of a thousand tokens or more."""
    import random

    rnd = random.Random(i)
    return f"{i}:" + "".join(chr(rnd.randrange(0x4E00, 0x9FA5)) for _ in range(chars))


async def test_summaries_of_long_unspaced_messages(stubs: Stubs, db: Database, pg_dsn: str,
                                                   ws: str) -> None:
    # 20 long messages, then 20 short ones whose summary builds on the first: the offline
    # model copies words, and these are thousands of tokens each. Both summaries are made
    # (each was cut at its room twice, then retried by the queue until parked).
    async def summary() -> tuple[str, str]:
        r = await stubs.sessions.GetSummaries(session_pb2.GetSummariesRequest(
            workspace_id=ws, session_id="s"))
        return str(r.short_summary.last_message_sequence), r.short_summary.content

    async with running_worker(worker_settings(pg_dsn, [ws], dream={"enabled": False})):
        await say(stubs, ws, "s", *[("alice" if i % 2 else "bob", unspaced(i))
                                    for i in range(20)])
        await eventually(lambda: _settled(db, ws), within=60)
        seq, first = await summary()
        await say(stubs, ws, "s", *[("alice" if i % 2 else "bob", f"ok {i}")
                                    for i in range(20)])
        await eventually(lambda: _settled(db, ws), within=60)
    rows = await queue_rows(db.pool, ws)
    assert [(r["status"], r["last_error"]) for r in rows if r["task_type"] == "summary"] \
        == [("completed", None)] * 2
    assert seq == "20" and any(unspaced(i)[3:40] in first for i in range(20)), first[:200]
    seq, second = await summary()
    assert seq == "40" and "alice: ok 1" in second, second[:200]


async def _settled(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return bool(rows) and all(r["status"] in ("completed", "failed") for r in rows)


async def test_dream_supersedes_and_derives(stubs: Stubs, db: Database, pg_dsn: str,
                                            ws: str) -> None:
    await say(stubs, ws, "s", ("alice", "I live in Paris."), ("alice", "I like chess."),
              ("alice", "I like jazz."), ("alice", "I like sushi."))
    await say(stubs, ws, "s", ("alice", "I live in Berlin."))
    settings = worker_settings(pg_dsn, [ws], dream={"conclusion_threshold": 5,
                                                    "min_interval_seconds": 0})
    async with running_worker(settings):
        await eventually(lambda: _dreamt(db, ws))
    rows = await conclusions(db, ws)
    paris = next(r for r in rows if r["content"] == "alice lives in Paris")
    berlin = next(r for r in rows if r["content"] == "alice lives in Berlin")
    assert paris["invalidated_at"] is not None and paris["superseded_by"] == \
        berlin["conclusion_id"]
    assert berlin["invalidated_at"] is None
    inductive = [r for r in rows if r["level"] == "inductive"]
    assert inductive and len(inductive[0]["premise_ids"]) == 3  # type: ignore[arg-type]
    listed = await stubs.conclusions.ListConclusions(conclusion_pb2.ListConclusionsRequest(
        workspace_id=ws, page_size=100))
    assert paris["conclusion_id"] not in {c.id for c in listed.conclusions}


async def _dreamt(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return any(r["task_type"] == "dream" and r["status"] == "completed" for r in rows)


async def test_deleted_observer_and_messages_are_skipped(stubs: Stubs, db: Database,
                                                        pg_dsn: str, ws: str) -> None:
    await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s"))
    await stubs.sessions.AddPeers(session_pb2.AddPeersRequest(
        workspace_id=ws, session_id="s", peers={
            "alice": resources_pb2.SessionPeerConfiguration(),
            "bob": resources_pb2.SessionPeerConfiguration(observe_others=True)}))
    ids = await say(stubs, ws, "s", ("alice", "I keep bees."), ("alice", "I sail on lakes."))
    # Deleted before any worker ran: the observer bob, and one of the messages.
    await stubs.peers.DeletePeer(peer_pb2.DeletePeerRequest(workspace_id=ws, peer_id="bob"))
    await stubs.messages.DeleteMessage(message_pb2.DeleteMessageRequest(
        workspace_id=ws, session_id="s", message_id=ids[0]))
    async with running_worker(worker_settings(pg_dsn, [ws])):
        await eventually(lambda: _none_open(db, ws))
    rows = await conclusions(db, ws)
    assert [(r["observer_id"], r["content"]) for r in rows] == [
        ("alice", "alice sails on lakes")]
