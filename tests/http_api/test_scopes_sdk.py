"""Scopes through the official `honcho-ai` SDK (unmodified) against a live server: every
scope method, `scopes=` on a session's creation, and the boundary: a fact said only in a
session outside the scope is not used by chat, representation, context or search made
through it (and is, without it)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from honcho import Honcho
from honcho.http.exceptions import NotFoundError

from honcho_grpc.server.app import Running


def _client(server: Running) -> tuple[Honcho, str]:
    assert server.http_port, "the in-process server serves HTTP"
    ws = f"scopes-{uuid.uuid4().hex[:8]}"
    return Honcho(base_url=f"http://127.0.0.1:{server.http_port}", workspace_id=ws,
                  max_retries=0), ws


def _membership(honcho: Honcho) -> None:
    honcho.session("in-1", scopes=["team"])  # the scope is created, the session joins it
    honcho.session("in-2")
    honcho.session("in-3")
    team = honcho.scope("team", metadata={"purpose": "work"})
    assert (team.id, team.metadata) == ("team", {"purpose": "work"})
    assert honcho.get_scope("team").metadata == {"purpose": "work"}
    honcho.scope("other")
    assert [s.id for s in honcho.scopes()] == ["team", "other"]
    assert [s.id for s in honcho.scopes(reverse=True)] == ["other", "team"]
    with pytest.raises(NotFoundError):
        honcho.get_scope("missing")

    team.add_sessions(["in-3", "in-2"])
    team.add_sessions(["in-2"])  # a member already: unchanged
    assert [s.id for s in team.sessions()] == ["in-1", "in-3", "in-2"]
    assert [s.id for s in team.sessions(reverse=True)] == ["in-2", "in-3", "in-1"]
    page = team.sessions(size=2)
    assert (page.total, page.pages, [s.id for s in page.items]) == (3, 2, ["in-1", "in-3"])
    with pytest.raises(NotFoundError):
        team.add_sessions(["in-2", "never-made"])
    team.remove_session("in-3")
    team.remove_session("in-3")  # not a member: nothing to do
    status = team.status()
    assert sorted(status) == ["in-1", "in-2"]
    assert {job.state for job in status.values()} == {"completed"}
    assert [s.id for s in honcho.scope("other").sessions()] == []


def _boundary(honcho: Honcho) -> None:
    honcho.scope("empty")
    alice = honcho.peer("alice")
    inside = honcho.session("inside", scopes=["team"])
    outside = honcho.session("outside")
    inside.add_messages([alice.message("I love kayaking on the lake every weekend")])
    outside.add_messages([alice.message("I love skydiving from small planes")])
    alice.set_card(["alice loves skydiving"])
    alice.conclusions.create([
        {"content": "alice loves kayaking", "session_id": "inside"},
        {"content": "alice loves skydiving", "session_id": "outside"}])

    # Representation: both without a boundary, one side with it.
    everything = alice.representation()
    assert "kayaking" in everything and "skydiving" in everything
    scoped = alice.representation(scope="team")
    assert "kayaking" in scoped and "skydiving" not in scoped
    assert "skydiving" not in alice.representation(scope=["team", "empty"])
    allowed = alice.representation(sessions=["outside"])
    assert "skydiving" in allowed and "kayaking" not in allowed

    # Context: the representation is confined, the card (built from everything) left out.
    wide = inside.context(peer_target="alice")
    assert "skydiving" in (wide.peer_representation or "") and wide.peer_card
    narrow = inside.context(peer_target="alice", scope="team")
    assert "kayaking" in (narrow.peer_representation or "")
    assert "skydiving" not in (narrow.peer_representation or "")
    assert narrow.peer_card is None
    listed = inside.context(peer_target="alice", sessions=["inside"])
    assert "skydiving" not in (listed.peer_representation or "")

    # Search: only the scope's sessions; an empty scope matches nothing.
    assert {m.session_id for m in honcho.search("love")} == {"inside", "outside"}
    assert {m.session_id for m in honcho.search("love", scope="team")} == {"inside"}
    assert list(honcho.search("love", scope="empty")) == []

    # Chat (streamed and not): the answer draws on the scope's sessions only.
    question = "What does alice love doing?"
    unscoped = alice.chat(question)
    assert isinstance(unscoped, str) and "skydiving" in unscoped.lower()
    answer = alice.chat(question, scope="team")
    assert isinstance(answer, str) and "kayak" in answer.lower()
    assert "skydiving" not in answer.lower()
    streamed = alice.chat_stream(question, scope="team")
    text = "".join(streamed)
    assert "kayak" in text.lower() and "skydiving" not in text.lower()
    only_outside = alice.chat(question, sessions=["outside"])
    assert isinstance(only_outside, str) and "kayak" not in only_outside.lower()
    with pytest.raises(NotFoundError):
        alice.chat(question, scope="ghost")


async def test_every_scope_method(server: Running) -> None:
    honcho, _ = _client(server)
    await asyncio.to_thread(_membership, honcho)


async def test_a_scope_is_a_visibility_boundary(server: Running) -> None:
    honcho, _ = _client(server)
    await asyncio.to_thread(_boundary, honcho)


async def test_contradictory_options_are_refused(server: Running) -> None:
    """What the SDK refuses before sending, the server refuses too (422), for callers that
    build the JSON themselves."""
    honcho, ws = _client(server)
    await asyncio.to_thread(lambda: honcho.session("s1", scopes=["team"]))
    base = f"/v3/workspaces/{ws}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        refused = [
            await http.post(f"{base}/peers/p/chat",
                            json={"query": "hi", "scope": "team", "session_id": "s1"}),
            await http.post(f"{base}/peers/p/chat", json={
                "query": "hi", "scope": "team", "filters": {"session_id": ["s1"]}}),
            await http.post(f"{base}/peers/p/chat",
                            json={"query": "hi", "filters": {"peer_id": "p"}}),
            await http.post(f"{base}/peers/p/representation", json={"scope": []}),
            await http.post(f"{base}/search", json={
                "query": "x", "scope": "team", "filters": {"session_id": "s1"}}),
            await http.post(f"{base}/sessions/s1/search", json={"query": "x", "scope": "team"}),
            await http.get(f"{base}/sessions/s1/context", params={"scope": "team"}),
            await http.get(f"{base}/sessions/s1/context",
                           params={"peer_target": "p", "sessions": ["other"]}),
            await http.get(f"{base}/sessions/s1/context", params={
                "peer_target": "p", "peer_perspective": "q", "scope": "team"}),
            await http.post(f"{base}/scopes", json={"id": "scope.team"}),
            await http.post(f"{base}/scopes/team/sessions", json={"session_ids": []}),
            await http.post(f"{base}/sessions", json={"id": "s2", "scopes": ["bad id"]}),
        ]
        assert [r.status_code for r in refused] == [422] * len(refused), [
            r.text for r in refused]
        created = await http.post(f"{base}/scopes", json={"id": "fresh"})
        again = await http.post(f"{base}/scopes", json={"id": "fresh"})
        assert (created.status_code, again.status_code) == (201, 200)
        assert set(created.json()) >= {"id", "metadata", "created_at"}
        gone = await http.get(f"{base}/scopes/nope/status")
        assert gone.status_code == 404
        # A session whose creation fails joins no scope, and makes none.
        assert (await http.get(f"{base}/scopes/never")).status_code == 404
