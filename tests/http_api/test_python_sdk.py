"""The official `honcho-ai` SDK (PyPI, unmodified) against the HTTP face of a live in-process
server: the scenario its docs show, each method's answer checked against what was stored."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from honcho import Honcho
from honcho.api_types import SessionPeerConfig
from honcho.http.exceptions import NotFoundError

from honcho_grpc.server.app import Running


def _client(server: Running) -> Honcho:
    assert server.http_port, "the in-process server serves HTTP"
    return Honcho(base_url=f"http://127.0.0.1:{server.http_port}",
                  workspace_id=f"sdk-{uuid.uuid4().hex[:8]}", max_retries=0)


def _core_scenario(honcho: Honcho) -> None:
    alice, bot = honcho.peer("alice"), honcho.peer("bot")
    session = honcho.session("chat-1")
    session.add_peers([alice, bot])
    assert {p.id for p in session.peers()} == {"alice", "bot"}

    added = session.add_messages([
        alice.message("I just adopted a puppy named Biscuit", metadata={"topic": "pets"}),
        bot.message("Congratulations! How old is Biscuit?"),
        alice.message("Biscuit is ten weeks old and loves the park"),
    ])
    assert [m.peer_id for m in added] == ["alice", "bot", "alice"]

    listed = list(session.messages())
    assert [m.id for m in listed] == [m.id for m in added]
    assert listed[0].metadata == {"topic": "pets"}
    page = session.messages(size=2)
    assert (page.total, page.pages, len(page.items)) == (3, 2, 2)
    assert [m.content for m in session.messages(filters={"peer_id": "bot"})] == [
        "Congratulations! How old is Biscuit?"]
    assert session.get_message(added[1].id).content == added[1].content

    hits = honcho.search("puppy Biscuit")
    assert added[0].id in {h.id for h in hits}
    assert {h.session_id for h in session.search("park")} == {"chat-1"}
    assert {h.peer_id for h in alice.search("Biscuit")} == {"alice"}

    alice.set_card(["alice has a puppy named Biscuit"])
    assert alice.get_card() == ["alice has a puppy named Biscuit"]

    made = alice.conclusions.create([{"content": "alice owns a ten-week-old puppy",
                                      "session_id": "chat-1"}])
    assert [c.content for c in alice.conclusions.list()] == ["alice owns a ten-week-old puppy"]
    found = alice.conclusions.query("dog")
    assert [c.id for c in found] == [made[0].id]
    assert "ten-week-old puppy" in alice.representation()

    context = session.context(tokens=2000, peer_target="alice")
    assert [m.id for m in context.messages] == [m.id for m in added]
    assert context.peer_card == ["alice has a puppy named Biscuit"]
    assert "ten-week-old puppy" in (context.peer_representation or "")

    answer = alice.chat("what is my dog called?")
    assert isinstance(answer, str) and answer
    streamed = alice.chat_stream("what is my dog called?")
    pieces = list(streamed)
    assert len(pieces) >= 1 and "".join(pieces) == streamed.get_final_response()["content"]

    alice.conclusions.delete(made[0].id)
    assert list(alice.conclusions.list()) == []


async def test_core_scenario(server: Running) -> None:
    await asyncio.to_thread(_core_scenario, _client(server))


def _errors(honcho: Honcho) -> None:
    session = honcho.session("s")
    with pytest.raises(NotFoundError):
        session.get_message("missing")
    assert honcho.peer("nobody").get_card() is None


async def test_errors_are_honchos(server: Running) -> None:
    await asyncio.to_thread(_errors, _client(server))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        bad = await http.post("/v3/workspaces", json={"id": "has space"})
        missing = await http.get("/v3/nowhere")
        big = await http.post("/v3/workspaces/w/sessions/s/messages/list?size=101")
        # What this server lacks is answered as Honcho 3.0.12 answers it.
        chat = await http.post("/v3/workspaces/w/chat", json={"query": "hi"})
        get_conclusion = await http.get("/v3/workspaces/w/conclusions/c1")
        evidence = await http.post("/v3/workspaces/w/peers/p/chat",
                                   json={"query": "hi", "include_evidence": True})
    assert chat.status_code == 404
    assert get_conclusion.status_code == 405
    assert evidence.status_code == 422
    assert bad.status_code == 422 and "id" in bad.json()["detail"]
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert big.status_code == 422 and isinstance(big.json()["detail"], list)


def _wider_scenario(honcho: Honcho) -> None:
    alice = honcho.peer("alice", metadata={"role": "user"})
    assert alice.get_metadata() == {"role": "user"}
    alice.set_metadata({"role": "owner"})
    assert alice.get_metadata() == {"role": "owner"}
    assert [p.id for p in honcho.peers()] == ["alice"]
    session = honcho.session("s1", metadata={"kind": "support"})
    session.add_peers([alice])
    session.set_peer_configuration(alice, SessionPeerConfig(observe_others=True))
    assert session.get_peer_configuration(alice).observe_others is True
    first = session.add_messages([alice.message(f"message {i}") for i in range(3)])
    updated = session.update_message(first[0], {"edited": True})
    assert updated.metadata == {"edited": True}
    uploaded = session.upload_file(("notes.txt", b"alice likes green tea", "text/plain"),
                                   peer=alice)
    assert [m.content for m in uploaded] == ["alice likes green tea"]
    clone = session.clone(message_id=first[1].id)
    assert [m.content for m in clone.messages()] == ["message 0", "message 1"]
    assert {s.id for s in honcho.sessions()} == {"s1", clone.id}
    assert {s.id for s in alice.sessions()} == {"s1", clone.id}
    assert session.summaries().short_summary is None
    status = honcho.queue_status()
    assert status.total_work_units >= status.pending_work_units >= 0
    assert honcho.workspace_id in list(honcho.workspaces())  # admin with auth off
    clone.delete()
    assert {s.id for s in honcho.sessions()} == {"s1"}


async def test_wider_scenario(server: Running) -> None:
    await asyncio.to_thread(_wider_scenario, _client(server))


async def test_pages_are_counted_and_offset_in_the_database(server: Running) -> None:
    """Honcho's page/size over a filtered list: the total counts what the filter keeps, the
    pages tile the list in order (either direction), a page past the end is empty."""
    ws = f"pages-{uuid.uuid4().hex[:8]}"
    base = f"/v3/workspaces/{ws}/sessions/s/messages"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        await http.post(base, json={"messages": [
            {"peer_id": "a" if i % 3 else "b", "content": f"m{i}"} for i in range(11)]})

        async def page(n: int, reverse: bool = False) -> dict[str, object]:
            answer = await http.post(f"{base}/list", params={
                "page": n, "size": 3, "reverse": str(reverse).lower()},
                json={"filters": {"peer_id": "a"}})
            assert answer.status_code == 200, answer.text
            found: dict[str, object] = answer.json()
            return found

        kept = [f"m{i}" for i in range(11) if i % 3]
        pages = [await page(n) for n in (1, 2, 3, 4)]
        assert [(p["total"], p["pages"]) for p in pages] == [(len(kept), 3)] * 4
        assert [m["content"] for p in pages for m in p["items"]] == kept  # type: ignore[attr-defined]
        assert pages[3]["items"] == []
        backwards = [await page(n, reverse=True) for n in (1, 2, 3)]
        assert [m["content"] for p in backwards for m in p["items"]  # type: ignore[attr-defined]
                ] == kept[::-1]
        empty = await http.post(f"/v3/workspaces/{ws}/sessions/none/messages/list")
        assert empty.status_code == 200, empty.text
        assert {k: empty.json()[k] for k in ("items", "total", "pages")} == {
            "items": [], "total": 0, "pages": 0}
        summaries = await http.get(f"/v3/workspaces/{ws}/sessions/none/summaries")
        assert (summaries.status_code, summaries.json()["short_summary"]) == (200, None)
