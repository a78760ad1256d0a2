"""The Python client where Honcho's SDK has the same concept: its names and argument orders,
and the former orders still working (or refused loudly) where they differ, against the live
server. The scenarios run in a worker thread while the test session's loop serves."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from honcho_grpc_client import Honcho

from honcho_grpc.server.app import Running


def _representation_orders(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice, tutor = honcho.peer("alice"), honcho.peer("tutor")
        lesson = honcho.session("lesson", peers=[alice, tutor])
        [fact] = tutor.conclusions_of(alice).create(
            [{"content": "alice learns best with pictures", "session_id": lesson.id}])
        honcho_order = tutor.representation(lesson, alice)  # (session, target) as in Honcho
        assert "pictures" in honcho_order
        assert tutor.representation(None, alice) == tutor.representation(target=alice)
        assert "pictures" in lesson.representation(tutor, target=alice)
        # The former order, a peer handle first, still means the target, with a warning.
        with pytest.warns(DeprecationWarning, match="target="):
            assert tutor.representation(alice) == tutor.representation(target=alice)
        with pytest.raises(TypeError, match="first argument is the session"):
            tutor.representation(alice, alice)
        # An id string first is the session, as in Honcho: the fact was stated in `lesson`
        # only, so another session's representation leaves it out.
        assert "pictures" not in tutor.representation("another-session", alice)

        # conclusions: Honcho's views, and the former call still listing.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [c.id for c in tutor.conclusions(alice)] == [fact.id]
        assert [c.id for c in tutor.conclusions_of(alice).list(session=lesson)] == [fact.id]
        [own] = alice.conclusions.create("I like drawing")
        assert (own.observer_id, own.observed_id) == ("alice", "alice")
        assert [c.id for c in alice.conclusions.list()] == [own.id]
        assert "drawing" in alice.conclusions.representation()
        assert {c.id for c in honcho.conclusions.list()} == {fact.id, own.id}
        alice.conclusions.delete(own.id)
        assert [c.id for c in honcho.conclusions()] == [fact.id]


def _dream_and_queue_orders(address: str, ws: str) -> None:
    with Honcho(address=address, workspace_id=ws) as honcho:
        alice, bob = honcho.peer("alice"), honcho.peer("bob")
        session = honcho.session("s", peers=[alice, bob])
        session.add_messages([alice.message("hello"), bob.message("hi")])
        assert honcho.schedule_dream(alice, session, bob) in (True, False)
        # observed used to come second: a peer handle there is refused, not taken as a session
        with pytest.raises(TypeError, match="second argument is the session"):
            honcho.schedule_dream(alice, bob)
        assert honcho.queue_status(alice, None, session).totals == \
            session.queue_status(alice).totals
        # Best first; the turn after a hit comes with it (search scores neighbouring turns).
        assert next(m.content for m in session.search("hello", None, 5)) == "hello"
        assert alice.get_card() == alice.card() == []
        assert alice.set_card(peer_card=["IDENTITY: alice"]) == ["IDENTITY: alice"]


async def test_representation_and_conclusions_follow_honcho(server: Running, ws: str) -> None:
    await asyncio.to_thread(_representation_orders, f"127.0.0.1:{server.port}", ws)


async def test_dream_queue_search_card_follow_honcho(server: Running, ws: str) -> None:
    await asyncio.to_thread(_dream_and_queue_orders, f"127.0.0.1:{server.port}", ws)


def test_api_key_is_the_token() -> None:
    honcho = Honcho(address="127.0.0.1:1", workspace_id="w", api_key="secret")
    try:
        assert honcho._transport.metadata == (("authorization", "Bearer secret"),)
    finally:
        honcho.close()
