"""What the derived memory says and when: conclusions dated by the messages they come from,
truncated answers never stored, dream output validated. The worker runs in process against
the real PostgreSQL; remote models are the OpenAI and Anthropic wire fakes (tests/fakes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from honcho_grpc_proto.v1 import conclusion_pb2, message_pb2, resources_pb2, session_pb2

from honcho_grpc.db.pool import Database
from tests.conftest import Stubs
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Reply, ScriptedServer
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings

DAY1 = datetime(2023, 1, 10, 9, 30, tzinfo=UTC)
DAY2 = datetime(2023, 6, 1, 18, 0, tzinfo=UTC)


def stamp(when: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


async def import_lines(stubs: Stubs, ws: str, lines: list[tuple[str, str, datetime]]) -> None:
    async def chunks() -> AsyncIterator[message_pb2.ImportMessagesRequest]:
        yield message_pb2.ImportMessagesRequest(workspace_id=ws, session_id="s", messages=[
            message_pb2.MessageInput(peer_id=p, content=c, create_time=stamp(t))
            for p, c, t in lines])

    await stubs.messages.ImportMessages(chunks())


async def settled(db: Database, ws: str, kind: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return any(r["task_type"] == kind and r["status"] == "completed" for r in rows) and all(
        r["status"] in ("completed", "failed") for r in rows)


async def listed(stubs: Stubs, ws: str) -> list[conclusion_pb2.Conclusion]:
    r = await stubs.conclusions.ListConclusions(conclusion_pb2.ListConclusionsRequest(
        workspace_id=ws, page_size=100, include_invalid=True))
    return list(r.conclusions)


async def test_an_imported_back_dated_conversation_is_dated_by_its_messages(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    await import_lines(stubs, ws, [
        ("alice", "I live in Paris.", DAY1),
        ("alice", "I like chess.", DAY1 + timedelta(minutes=1)),
        ("alice", "I like jazz.", DAY1 + timedelta(minutes=2)),
        ("alice", "I like sushi.", DAY2 - timedelta(minutes=5)),
        ("alice", "I live in Berlin.", DAY2)])
    settings = worker_settings(pg_dsn, [ws], dream={"conclusion_threshold": 5,
                                                    "min_interval_seconds": 0})
    async with running_worker(settings):
        await eventually(lambda: settled(db, ws, "dream"))
    by_content = {c.content: c for c in await listed(stubs, ws)}
    paris, berlin = by_content["alice lives in Paris"], by_content["alice lives in Berlin"]
    # Each explicit conclusion carries the time its message was said, not when derived.
    assert paris.create_time.ToDatetime(UTC) == DAY1
    assert by_content["alice likes jazz"].create_time.ToDatetime(UTC) == \
        DAY1 + timedelta(minutes=2)
    assert berlin.create_time.ToDatetime(UTC) == DAY2
    # "Newer" is by that time: Berlin (June) supersedes Paris (January).
    assert not paris.valid and paris.superseded_by_id == berlin.id and berlin.valid
    # A derived conclusion is dated by its latest premise.
    pattern = next(c for c in by_content.values()
                   if c.level == resources_pb2.CONCLUSION_LEVEL_INDUCTIVE)
    assert pattern.create_time.ToDatetime(UTC) == DAY2 - timedelta(minutes=5)


# -- remote models through the wire fakes ------------------------------------------------------

def answer(kind: str, body: dict[str, Any], value: dict[str, Any],
           finish: str | None = None) -> Reply:
    """A structured answer as each wire carries it: OpenAI JSON text, Anthropic the forced
    answer tool's input."""
    if kind == "openai":
        return Reply(text=json.dumps(value), finish_reason=finish, output_tokens=50)
    tool = body["tools"][-1]["name"]
    return Reply(text="", tool_calls=[("toolu_1", tool, value)], finish_reason=finish,
                 output_tokens=50)


def system_of(kind: str, body: dict[str, Any]) -> str:
    if kind == "anthropic":
        system = body.get("system") or ""
        return system if isinstance(system, str) else json.dumps(system)
    return str(body["messages"][0]["content"])


def budget(kind: str, body: dict[str, Any]) -> int:
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)


@pytest.fixture(params=["openai", "anthropic"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ScriptedServer]]:
    server = FakeOpenAI() if request.param == "openai" else FakeAnthropic()
    async with server:
        yield request.param, server


def remote(kind: str, server: ScriptedServer) -> dict[str, Any]:
    return {"provider": kind, "model": "test-model", f"{kind}_base_url": server.url,
            "max_retries": 0, "timeout_seconds": 10.0, "max_output_tokens": 300}


CUT = {"explicit": [{"content": "alice has a do", "said_at": ""}]}
WHOLE = {"explicit": [{"content": "alice has a dog named Rex", "said_at": ""}]}


async def test_a_truncated_extraction_is_never_stored(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    limit = {"openai": "length", "anthropic": "max_tokens"}[kind]
    # Every answer is cut at its limit, whatever the room, and cannot be split further.
    server.respond = lambda body: answer(kind, body, CUT, limit)
    await import_lines(stubs, ws, [("alice", "I have a dog named Rex.", DAY1)])
    settings = worker_settings(pg_dsn, [ws], queue={"max_attempts": 1},
                               llm=remote(kind, server), dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: _failed(db, ws))
    assert await listed(stubs, ws) == []
    rooms = [budget(kind, r.body) for r in server.requests]
    assert rooms == [300, 600], rooms  # asked again with more room before giving up


async def test_a_truncated_extraction_is_asked_again_with_more_room(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    limit = {"openai": "length", "anthropic": "max_tokens"}[kind]

    def respond(body: dict[str, Any]) -> Reply:
        if "peer card" in system_of(kind, body):
            return answer(kind, body, {"card": ["ATTRIBUTE: Has a dog named Rex"]})
        cut = budget(kind, body) <= 300
        return answer(kind, body, CUT if cut else WHOLE, limit if cut else None)

    server.respond = respond
    await import_lines(stubs, ws, [("alice", "I have a dog named Rex.", DAY1)])
    settings = worker_settings(pg_dsn, [ws], llm=remote(kind, server),
                               dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: settled(db, ws, "representation"))
    assert [c.content for c in await listed(stubs, ws)] == ["alice has a dog named Rex"]


async def test_a_summary_cut_twice_keeps_its_whole_sentences(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    limit = {"openai": "length", "anthropic": "max_tokens"}[kind]

    def respond(body: dict[str, Any]) -> Reply:
        system = system_of(kind, body)
        if "summary" in system:  # cut at its limit, whatever the room
            return Reply(text="alice has a dog named Rex. She walks him every mor",
                         finish_reason=limit, output_tokens=budget(kind, body))
        if "peer card" in system:
            return answer(kind, body, {"card": ["ATTRIBUTE: Has a dog named Rex"]})
        return answer(kind, body, WHOLE)

    server.respond = respond
    await import_lines(stubs, ws, [("alice", f"I walk my dog Rex, day {i}.",
                                    DAY1 + timedelta(days=i)) for i in range(20)])
    settings = worker_settings(pg_dsn, [ws], llm=remote(kind, server),
                               dream={"enabled": False})
    async with running_worker(settings):
        await eventually(lambda: settled(db, ws, "summary"))
    rows = [r for r in await queue_rows(db.pool, ws) if r["task_type"] == "summary"]
    assert [(r["status"], r["attempts"], r["last_error"]) for r in rows] == \
        [("completed", 1, None)]
    # Asked again with twice the room, cut again: what it got to is kept, billed for both.
    rooms = [budget(kind, r.body) for r in server.requests
             if "summary" in system_of(kind, r.body)]
    assert len(rooms) == 2 and rooms[1] == 2 * rooms[0], rooms
    assert rows[0]["usage"]["output_tokens"] == sum(rooms), rows[0]["usage"]
    r = await stubs.sessions.GetSummaries(session_pb2.GetSummariesRequest(
        workspace_id=ws, session_id="s"))
    assert r.short_summary.content == "alice has a dog named Rex."
    assert r.short_summary.last_message_sequence == 20


async def _failed(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    return any(r["status"] == "failed" for r in rows)


async def test_a_dream_proposing_invalid_items_has_them_refused(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    server = FakeOpenAI()
    facts = {DAY1: "alice lives in Paris", DAY2: "alice lives in Berlin"}

    def respond(body: dict[str, Any]) -> Reply:
        system = system_of("openai", body)
        if "consolidate" in system:
            # Numbered oldest first: [1] Paris (January), [2] Berlin (June).
            return answer("openai", body, {
                "superseded": [{"old": 2, "new": 1}],  # an older fact replacing a newer one
                "inductive": [{"content": "alice moves a lot", "premises": [1]}],  # one premise
                "contradictions": [],
                "deductive": [{"content": "alice lives in Germany", "premises": [2]}]})
        if "peer card" in system:
            return answer("openai", body, {"card": []})
        # Lines under "Earlier" are context already recorded: only the new ones count.
        new = body["messages"][1]["content"].rpartition("New messages:")[2]
        said = next(t for t in facts if f"{t:%Y-%m-%d %H:%M:%S}" in new)
        return answer("openai", body, {"explicit": [
            {"content": facts[said], "said_at": f"{said:%Y-%m-%d %H:%M:%S}"}]})

    server.respond = respond
    async with server:
        await import_lines(stubs, ws, [("alice", "I live in Paris.", DAY1)])
        settings = worker_settings(pg_dsn, [ws], llm=remote("openai", server),
                                   dream={"conclusion_threshold": 2,
                                          "min_interval_seconds": 0})
        async with running_worker(settings):
            await eventually(lambda: settled(db, ws, "representation"))
            await import_lines(stubs, ws, [("alice", "I live in Berlin.", DAY2)])
            await eventually(lambda: settled(db, ws, "dream"))
    got = {c.content: c for c in await listed(stubs, ws)}
    assert got["alice lives in Berlin"].valid and got["alice lives in Paris"].valid
    assert "alice moves a lot" not in got  # a pattern needs two premises
    germany = got["alice lives in Germany"]  # a valid deduction is kept, dated by its premise
    assert germany.create_time.ToDatetime(UTC) == DAY2
    assert list(germany.premise_ids) == [got["alice lives in Berlin"].id]
