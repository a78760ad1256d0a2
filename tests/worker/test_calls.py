"""Model calls of the worker through the OpenAI and Anthropic wire fakes (tests/fakes): one
extraction call covers every speaker of a stretch of conversation, a peer card is its own
task (refreshed at most every PEER_CARD_REFRESH_SECONDS) whose failure leaves the extraction
done, and the per-task settings (model, reasoning effort, output budget) reach the wire."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Failure, Reply, Scripted, ScriptedServer
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings
from tests.worker.test_reasoning_quality import (
    DAY1,
    import_lines,
    listed,
    remote,
    system_of,
)

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([A-Za-z0-9_-]+): (.*)$")
CHAT = [("alice", "I moved to Lisbon in March."),
        ("bob", "Nice, I still live in Porto."),
        ("alice", "I teach maths at a high school."),
        ("bob", "I am learning the cello."),
        ("alice", "My sister Ines visits every summer."),
        ("bob", "I recommend the tile museum to you.")]


@pytest.fixture(params=["openai", "anthropic"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ScriptedServer]]:
    server = FakeOpenAI() if request.param == "openai" else FakeAnthropic()
    async with server:
        yield request.param, server


def answer(kind: str, body: dict[str, Any], value: dict[str, Any]) -> Reply:
    """A structured answer as each wire carries it: JSON text, or on Anthropic the input of
    the forced answer tool when one was offered (not with thinking: then JSON text too)."""
    if kind == "anthropic" and body.get("tools"):
        return Reply(text="", tool_calls=[("toolu_1", body["tools"][-1]["name"], value)],
                     output_tokens=50)
    return Reply(text=json.dumps(value), output_tokens=50)


def kind_of(kind: str, body: dict[str, Any]) -> str:
    system = system_of(kind, body)
    if "peer card" in system:
        return "card"
    if "consolidate" in system:
        return "dream"
    if "summary" in system:
        return "summary"
    return "extraction"


def user_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "openai":
        return "\n".join(str(m["content"]) for m in body["messages"] if m["role"] == "user")
    parts = []
    for m in body["messages"]:
        content = m["content"]
        parts += [content] if isinstance(content, str) else \
            [b.get("text", "") for b in content if isinstance(b, dict)]
    return "\n".join(parts)


def extraction(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """One fact per new line, filed under its speaker when the speaker is a target."""
    system = system_of(kind, body)
    targets = set(re.findall(r'"([A-Za-z0-9_-]+)"', system.partition("Targets:")[2]
                             .split("\n", 1)[0]))
    new = user_text(kind, body).rpartition("New messages:")[2]
    return {"explicit": [
        {"about": m[2], "content": f"{m[2]} said {m[3].rstrip('.')}", "said_at": m[1]}
        for m in map(LINE.match, new.splitlines()) if m and m[2] in targets]}


def scripted(kind: str, card: Scripted | None = None):  # type: ignore[no-untyped-def]
    def respond(body: dict[str, Any]) -> Scripted:
        what = kind_of(kind, body)
        if what == "card":
            return card or answer(kind, body, {"card": ["ATTRIBUTE: Lives in Lisbon"]})
        if what == "summary":
            return Reply(text="A summary.")
        return answer(kind, body, extraction(kind, body))
    return respond


def calls(server: ScriptedServer, kind: str, what: str) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if kind_of(kind, r.body) == what]


async def done(db: Database, ws: str, *kinds: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return all(any(r["task_type"] == k and r["status"] == "completed" for r in rows)
               for k in kinds) and all(r["status"] in ("completed", "failed") for r in rows)


async def test_one_extraction_call_covers_both_speakers_of_an_interleaved_chat(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    server.respond = scripted(kind)  # type: ignore[assignment]
    await import_lines(stubs, ws, [(p, text, DAY1 + timedelta(minutes=i))
                                   for i, (p, text) in enumerate(CHAT)])
    settings = worker_settings(pg_dsn, [ws], llm=remote(kind, server),
                               dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: done(db, ws, "representation", "card"))
    # Two speakers, each its own work unit: one call read the stretch and filed both.
    assert len(calls(server, kind, "extraction")) == 1
    got = {(c.observed_id, c.content) for c in await listed(stubs, ws)}
    assert got == {(p, f"{p} said {t.rstrip('.')}") for p, t in CHAT}
    rows = await queue_rows(db.pool, ws)
    reps = [r for r in rows if r["task_type"] == "representation"]
    assert len(reps) == 6 and {r["status"] for r in reps} == {"completed"}
    assert {r["work_unit_key"].rsplit(":", 1)[1] for r in reps} == {"alice", "bob"}
    # One card refresh per speaker, each its own task.
    assert len(calls(server, kind, "card")) == 2


async def test_live_messages_of_two_speakers_share_extraction_calls(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    from honcho_grpc_proto.v1 import message_pb2

    server = FakeOpenAI()
    server.respond = scripted("openai")  # type: ignore[assignment]
    async with server:
        settings = worker_settings(pg_dsn, [ws], llm=remote("openai", server),
                                   dream={"enabled": False},
                                   queue={"batch_wait_seconds": 3.0,
                                          "batch_idle_seconds": 1.0})
        async with running_worker(settings):
            for peer, text in CHAT:  # one message a call, as a chat sends them
                await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
                    workspace_id=ws, session_id="s",
                    messages=[message_pb2.MessageInput(peer_id=peer, content=text)]))
            await eventually(lambda: done(db, ws, "representation"))
    # Held until the chat went quiet, then read once for both speakers.
    assert len(calls(server, "openai", "extraction")) == 1
    assert len(await listed(stubs, ws)) == len(CHAT)


async def test_a_card_failure_leaves_the_extraction_done(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    server.respond = scripted(kind, card=Failure(500))  # type: ignore[assignment]
    await import_lines(stubs, ws, [(p, text, DAY1 + timedelta(minutes=i))
                                   for i, (p, text) in enumerate(CHAT[:2])])
    settings = worker_settings(pg_dsn, [ws], llm=remote(kind, server),
                               queue={"max_attempts": 2}, dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: _cards_failed(db, ws))
    rows = await queue_rows(db.pool, ws)
    reps = [r for r in rows if r["task_type"] == "representation"]
    assert [(r["status"], r["attempts"]) for r in reps] == [("completed", 1)] * 2
    assert len(calls(server, kind, "extraction")) == 1  # never extracted again
    assert {c.content for c in await listed(stubs, ws)} == {
        "alice said I moved to Lisbon in March", "bob said Nice, I still live in Porto"}
    assert await db.pool.fetchval(
        "SELECT count(*) FROM peer_cards WHERE workspace_id = $1", ws) == 0


async def _cards_failed(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    cards = [r for r in rows if r["task_type"] == "card"]
    return len(cards) == 2 and all(r["status"] == "failed" for r in cards)


async def test_per_task_settings_reach_the_wire(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    server.respond = scripted(kind)  # type: ignore[assignment]
    await import_lines(stubs, ws, [(p, text, DAY1 + timedelta(minutes=i))
                                   for i, (p, text) in enumerate(CHAT[:2])])
    llm = {**remote(kind, server), "extraction_model": "extract-model",
           "extraction_reasoning_effort": "low", "extraction_max_output_tokens": 1500,
           "card_model": "card-model", "reasoning_effort": "minimal"}
    settings = worker_settings(pg_dsn, [ws], llm=llm, dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: done(db, ws, "representation", "card"))
    [extract] = calls(server, kind, "extraction")
    cards = calls(server, kind, "card")
    assert extract["model"] == "extract-model" and {c["model"] for c in cards} == {"card-model"}
    if kind == "openai":
        assert extract["reasoning_effort"] == "low" and extract["max_tokens"] == 1500
        assert {c["reasoning_effort"] for c in cards} == {"minimal"}  # the global effort
    else:
        # A thinking budget on top of the output budget, and no forced answer tool.
        assert extract["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert extract["max_tokens"] == 1500 + 2048 and "tool_choice" not in extract
        assert {c["thinking"]["budget_tokens"] for c in cards} == {1024}
    assert len(await listed(stubs, ws)) == 2


async def test_a_card_refresh_waits_its_interval_and_is_not_pending_meanwhile(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    from honcho_grpc_proto.v1 import workspace_pb2

    server = FakeOpenAI()
    server.respond = scripted("openai")  # type: ignore[assignment]
    async with server:
        settings = worker_settings(pg_dsn, [ws], llm=remote("openai", server),
                                   dream={"enabled": False},
                                   peer_card={"refresh_seconds": 300.0})
        async with running_worker(settings):
            await import_lines(stubs, ws, [("alice", CHAT[0][1], DAY1)])
            await eventually(lambda: done(db, ws, "representation", "card"))
            await import_lines(stubs, ws, [("alice", CHAT[2][1], DAY1 + timedelta(hours=1))])
            await eventually(lambda: _held_card(db, ws))
            status = await stubs.workspaces.GetQueueStatus(
                workspace_pb2.GetQueueStatusRequest(workspace_id=ws))
    # The first card at once; the next one scheduled 300 s after it, one call for both
    # extractions so far, and not reported as pending derivation work.
    assert len(calls(server, "openai", "card")) == 1
    assert len(calls(server, "openai", "extraction")) == 2
    assert status.totals.pending == 0 and status.totals.in_progress == 0
    held = await db.pool.fetchval(
        "SELECT extract(epoch FROM run_after - (SELECT updated_at FROM peer_cards "
        "WHERE workspace_id = $1)) FROM queue WHERE workspace_id = $1 AND task_type = 'card' "
        "AND status = 'pending'", ws)
    assert abs(float(held) - 300.0) < 1.0


async def _held_card(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    reps = [r for r in rows if r["task_type"] == "representation"]
    cards = [r for r in rows if r["task_type"] == "card"]
    return len(reps) == 2 and all(r["status"] == "completed" for r in reps) and \
        [r["status"] for r in cards] == ["completed", "pending"]
