"""Scopes in the store and the domain, on the real database: membership, its order and
pages, the atomic join at a session's creation, and the boundary the reads apply."""

from __future__ import annotations

import uuid

import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.domain import scopes, sessions, upsert
from honcho_grpc.errors import HonchoError, InvalidArgument
from honcho_grpc.ids import new_id
from honcho_grpc.model import NewConclusion
from honcho_grpc.settings import Settings
from honcho_grpc.store import conclusions as conclusion_store
from honcho_grpc.store import memory


def _ws() -> str:
    return f"scopes-{uuid.uuid4().hex[:8]}"


async def _session(db: Database, settings: Settings, ws: str, session_id: str,
                   scope_ids: tuple[str, ...] = ()) -> None:
    await upsert.session(db.pool, settings, ws, session_id, {}, {}, scope_ids)


async def test_membership_order_pages_and_status(db: Database, settings: Settings) -> None:
    ws = _ws()
    for s in ("s1", "s2", "s3"):
        await _session(db, settings, ws, s)
    scope, created = await scopes.get_or_create(db.pool, ws, "team", {"k": "v"})
    assert created and scope.metadata == {"k": "v"}
    again, created = await scopes.get_or_create(db.pool, ws, "team", None)
    assert not created and again.metadata == {"k": "v"}
    replaced, _ = await scopes.get_or_create(db.pool, ws, "team", {"k": "w"})
    assert replaced.metadata == {"k": "w"}

    assert await scopes.add_sessions(db.pool, ws, "team", ["s2", "s1"]) == 2
    assert await scopes.add_sessions(db.pool, ws, "team", ["s1", "s3"]) == 1  # s1: a member
    page = await scopes.list_sessions(db.pool, ws, "team", False, 2, "")
    assert [s.session_id for s in page.items] == ["s2", "s1"]  # the order they joined
    rest = await scopes.list_sessions(db.pool, ws, "team", False, 2, page.next_token)
    assert [s.session_id for s in rest.items] == ["s3"] and not rest.next_token
    newest = await scopes.list_sessions(db.pool, ws, "team", True, 10, "")
    assert [s.session_id for s in newest.items] == ["s3", "s1", "s2"]

    with pytest.raises(HonchoError) as missing:
        await scopes.add_sessions(db.pool, ws, "team", ["s1", "nope"])
    assert missing.value.reason == "SESSION_NOT_FOUND"
    with pytest.raises(HonchoError) as no_scope:
        await scopes.add_sessions(db.pool, ws, "other", ["s1"])
    assert no_scope.value.reason == "SCOPE_NOT_FOUND"
    with pytest.raises(InvalidArgument):
        await scopes.add_sessions(db.pool, ws, "team", [f"x{i}" for i in range(101)])

    assert await scopes.remove_session(db.pool, ws, "team", "s1")
    assert not await scopes.remove_session(db.pool, ws, "team", "s1")
    status = await scopes.status(db.pool, ws, "team")
    assert [m.session_id for m in status] == ["s2", "s3"]

    listed = await scopes.list_scopes(db.pool, ws, False, 10, "")
    assert [s.scope_id for s in listed.items] == ["team"]

    # A deleted session leaves the scopes it was in.
    await db.pool.execute("DELETE FROM sessions WHERE workspace_id = $1 AND session_id = 's2'",
                          ws)
    assert [m.session_id for m in await scopes.status(db.pool, ws, "team")] == ["s3"]


async def test_joining_at_creation_is_atomic(db: Database, settings: Settings) -> None:
    ws = _ws()
    await _session(db, settings, ws, "a", ("red", "blue"))
    assert await scopes.boundary(db.pool, ws, scopes=["red"]) == {"a"}
    assert await scopes.boundary(db.pool, ws, scopes=["blue"]) == {"a"}

    # Too many observers: the session's creation fails, and the scope it named is not made.
    limit = settings.app.session_observers_limit
    crowd = {f"p{i}": (None, True) for i in range(limit + 1)}
    with pytest.raises(HonchoError) as refused:
        await upsert.session(db.pool, settings, ws, "b", {}, crowd, ["green"])
    assert refused.value.reason == "OBSERVER_LIMIT_EXCEEDED"
    with pytest.raises(HonchoError):
        await scopes.get(db.pool, ws, "green")
    with pytest.raises(HonchoError):
        await sessions.require(db.pool, ws, "b")

    # The gRPC face's get-or-create takes them too.
    await sessions.get_or_create(db.pool, settings, ws, "c", {}, {}, {}, ["red"])
    assert await scopes.boundary(db.pool, ws, scopes=["red"]) == {"a", "c"}


async def test_boundary_narrows_what_reads_see(db: Database, settings: Settings) -> None:
    ws = _ws()
    await _session(db, settings, ws, "inside", ("team",))
    await _session(db, settings, ws, "outside")
    await scopes.get_or_create(db.pool, ws, "empty", None)
    await upsert.peer(db.pool, ws, "alice", {})

    def said(session_id: str | None, content: str, level: str = "explicit") -> NewConclusion:
        return NewConclusion(conclusion_id=new_id(), observer_id="alice", observed_id="alice",
                             session_id=session_id, content=content, embedding=None,
                             model=None, level=level)  # type: ignore[arg-type]

    async with db.pool.acquire() as conn:
        await conclusion_store.insert_conclusions(conn, ws, [
            said("inside", "alice kayaks"), said("outside", "alice skydives"),
            said(None, "alice likes water sports", "deductive")])

    team = await scopes.boundary(db.pool, ws, scopes=["team"])
    assert team == {"inside"}
    everything = await memory.conclusions_recent(db.pool, ws, "alice", "alice", None, 10)
    assert len(everything) == 3
    scoped = await memory.conclusions_recent(db.pool, ws, "alice", "alice", sorted(team), 10)
    assert [c.content for c in scoped] == ["alice kayaks"]  # explicit, from inside only
    empty = await scopes.boundary(db.pool, ws, scopes=["empty"])
    assert empty == frozenset()
    assert await memory.conclusions_recent(db.pool, ws, "alice", "alice", [], 10) == []
    union = await scopes.boundary(db.pool, ws, scopes=["team", "empty"])
    assert union == {"inside"}
    assert await scopes.boundary(db.pool, ws, sessions=["outside"]) == {"outside"}
    assert await scopes.boundary(db.pool, ws) is None
    with pytest.raises(HonchoError) as missing:
        await scopes.boundary(db.pool, ws, scopes=["team", "ghost"])
    assert missing.value.reason == "SCOPE_NOT_FOUND"
    status = await scopes.status(db.pool, ws, "team")
    assert [(m.session_id, m.conclusions) for m in status] == [("inside", 1)]
