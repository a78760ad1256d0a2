"""The dream sees the card and the messages behind the newest conclusions, and may look things
up in bounded rounds before it answers (DREAM_MAX_TOOL_ROUNDS). The worker runs in process
against the real PostgreSQL; the models are the OpenAI and Anthropic wire fakes.

The scripted conversation: alice lives in Paris (January), then moved to Berlin (June). The
dream is due once both are conclusions; what the fake answers to it is each test's script."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.llm import LocalProvider, Message
from honcho_grpc.providers.llm.base import ToolSpec
from honcho_grpc.worker.reasoning import DREAM_SCHEMA
from tests.conftest import Stubs
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import Failure, Reply, ScriptedServer
from tests.worker.conftest import eventually, queue_rows, running_worker, worker_settings
from tests.worker.test_reasoning_quality import (
    DAY1,
    DAY2,
    answer,
    import_lines,
    listed,
    remote,
    settled,
    system_of,
)

SAID = {"I live in Paris.": "alice lives in Paris",
        "I moved to Berlin last week.": "alice lives in Berlin"}
CARD = "IDENTITY: alice, a nurse"
SUPERSEDE = {"superseded": [{"old": 1, "new": 2}], "deductive": [], "inductive": [],
             "contradictions": []}
LOOKUP_TOOLS = {"search_conclusions", "search_messages", "grep_messages", "message_context",
                "messages_by_date", "get_premises", "get_dependents"}

Dreamer = Callable[[dict[str, Any], int], Reply | Failure]


@pytest.fixture(params=["openai", "anthropic"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, ScriptedServer]]:
    server = FakeOpenAI() if request.param == "openai" else FakeAnthropic()
    async with server:
        yield request.param, server


def user_text(kind: str, body: dict[str, Any]) -> str:
    """The first user turn's text."""
    first = body["messages"][1 if kind == "openai" else 0]["content"]
    if isinstance(first, str):
        return first
    return "".join(b.get("text", "") for b in first if isinstance(b, dict))


def tool_results(kind: str, body: dict[str, Any]) -> list[str]:
    """What the lookups returned, as the request carries it back to the model."""
    if kind == "openai":
        return [m["content"] for m in body["messages"] if m["role"] == "tool"]
    return [b["content"] for m in body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_result"]


def offered(body: dict[str, Any]) -> set[str]:
    """The lookup tools a request offers (not the Anthropic answer tool)."""
    names = {t["function"]["name"] if "function" in t else t["name"]
             for t in body.get("tools") or []}
    return names & LOOKUP_TOOLS


def lookup(kind: str, n: int, name: str, args: dict[str, Any]) -> Reply:
    call_id = f"call_{n}" if kind == "openai" else f"toolu_{n}"
    return Reply(text="", tool_calls=[(call_id, name, args)], output_tokens=20)


def is_dream(kind: str, body: dict[str, Any]) -> bool:
    return "consolidate" in system_of(kind, body)


def script(kind: str, dreamer: Dreamer) -> Callable[[dict[str, Any]], Reply | Failure]:
    """Extraction and card answers for the conversation; dream requests go to `dreamer`
    with their number (0 for the first)."""
    dreams: list[dict[str, Any]] = []

    def respond(body: dict[str, Any]) -> Reply | Failure:
        if is_dream(kind, body):
            dreams.append(body)
            return dreamer(body, len(dreams) - 1)
        if "peer card" in system_of(kind, body):
            return answer(kind, body, {"card": [CARD]})
        new = user_text(kind, body).rpartition("New messages:")[2]
        return answer(kind, body, {"explicit": [
            {"content": fact, "said_at": ""} for said, fact in SAID.items() if said in new]})

    return respond


async def converse(stubs: Stubs, db: Database, pg_dsn: str, ws: str, kind: str,
                   server: ScriptedServer, *, rounds: int = 3, attempts: int = 4) -> None:
    """The conversation, then the worker until the dream has run (or failed)."""
    await import_lines(stubs, ws, [("alice", "I live in Paris.", DAY1)])
    settings = worker_settings(pg_dsn, [ws], llm=remote(kind, server),
                               queue={"max_attempts": attempts},
                               dream={"conclusion_threshold": 2, "min_interval_seconds": 0,
                                      "max_tool_rounds": rounds})
    async with running_worker(settings):
        await eventually(lambda: settled(db, ws, "representation"))
        await import_lines(stubs, ws, [("alice", "I moved to Berlin last week.", DAY2)])
        await eventually(lambda: _dream_over(db, ws))


async def _dream_over(db: Database, ws: str) -> bool:
    rows = await queue_rows(db.pool, ws)
    dreams = [r for r in rows if r["task_type"] == "dream"]
    return bool(dreams) and all(r["status"] in ("completed", "failed") for r in rows)


def dream_requests(kind: str, server: ScriptedServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if is_dream(kind, r.body)]


async def by_content(stubs: Stubs, ws: str) -> dict[str, Any]:
    return {c.content: c for c in await listed(stubs, ws)}


async def test_the_dream_reads_card_and_messages_and_looks_up_before_answering(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake

    def dreamer(body: dict[str, Any], n: int) -> Reply:
        if n == 0:
            return lookup(kind, n, "grep_messages", {"text": "Berlin"})
        return answer(kind, body, SUPERSEDE)

    server.respond = script(kind, dreamer)
    await converse(stubs, db, pg_dsn, ws, kind, server)
    first, second = dream_requests(kind, server)
    shown = user_text(kind, first)
    assert CARD in shown  # the card
    assert "alice: I moved to Berlin last week." in shown  # the source messages, by speaker
    assert offered(first) == LOOKUP_TOOLS
    # The lookup ran against the store and went back to the model with the rest.
    [found] = tool_results(kind, second)
    assert "alice: I moved to Berlin last week." in found and "1 message contains" in found
    got = await by_content(stubs, ws)
    paris, berlin = got["alice lives in Paris"], got["alice lives in Berlin"]
    assert not paris.valid and paris.superseded_by_id == berlin.id and berlin.valid


async def test_when_the_rounds_run_out_one_last_call_answers_from_the_findings(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake

    def dreamer(body: dict[str, Any], n: int) -> Reply:
        if offered(body):  # never satisfied while it may look up
            return lookup(kind, n, "grep_messages", {"text": "Paris"})
        return answer(kind, body, SUPERSEDE)

    server.respond = script(kind, dreamer)
    await converse(stubs, db, pg_dsn, ws, kind, server, rounds=2)
    requests = dream_requests(kind, server)
    assert len(requests) == 3  # two rounds of lookups, then the answer
    final = requests[-1]
    assert not offered(final) and tool_results(kind, final) == []
    assert "What your lookups found:" in user_text(kind, final)
    assert "alice: I live in Paris." in user_text(kind, final).rpartition("found:")[2]
    assert not (await by_content(stubs, ws))["alice lives in Paris"].valid


async def test_an_answer_cut_among_the_lookups_is_never_used(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    cut = {"openai": "length", "anthropic": "max_tokens"}[kind]

    def dreamer(body: dict[str, Any], n: int) -> Reply:
        if n == 0:  # cut at its limit: whatever it holds may be incomplete
            return answer(kind, body, {**SUPERSEDE, "deductive": [
                {"content": "alice lives in Germ", "premises": [2]}]}, cut)
        return answer(kind, body, {**SUPERSEDE, "deductive": [
            {"content": "alice lives in Germany", "premises": [2]}]})

    server.respond = script(kind, dreamer)
    await converse(stubs, db, pg_dsn, ws, kind, server)
    requests = dream_requests(kind, server)
    assert len(requests) == 2 and not offered(requests[1])
    got = await by_content(stubs, ws)
    assert "alice lives in Germ" not in got
    assert list(got["alice lives in Germany"].premise_ids) == [got["alice lives in Berlin"].id]


async def test_an_answer_that_is_not_json_among_the_lookups_is_asked_again(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    # OpenAI only: with lookups offered, Anthropic must call a tool (the answer is one).
    server = FakeOpenAI()

    def dreamer(body: dict[str, Any], n: int) -> Reply:
        if n == 0:
            return Reply(text="Berlin is newer than Paris, so Paris is superseded.")
        return answer("openai", body, SUPERSEDE)

    server.respond = script("openai", dreamer)
    async with server:
        await converse(stubs, db, pg_dsn, ws, "openai", server)
    assert len(dream_requests("openai", server)) == 2
    assert not (await by_content(stubs, ws))["alice lives in Paris"].valid


async def test_a_refused_request_fails_the_dream_at_once_and_writes_nothing(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake

    def dreamer(body: dict[str, Any], n: int) -> Reply | Failure:
        if n == 0:
            return lookup(kind, n, "grep_messages", {"text": "Berlin"})
        return Failure(400, "bad request")

    server.respond = script(kind, dreamer)
    await converse(stubs, db, pg_dsn, ws, kind, server)
    [row] = [r for r in await queue_rows(db.pool, ws) if r["task_type"] == "dream"]
    assert row["status"] == "failed" and row["attempts"] == 1, dict(row)
    assert len(dream_requests(kind, server)) == 2  # not retried: a 400 will not pass later
    got = await by_content(stubs, ws)
    assert got["alice lives in Paris"].valid and got["alice lives in Berlin"].valid


async def test_with_no_rounds_the_dream_is_one_call_without_lookups(
        fake: tuple[str, ScriptedServer], stubs: Stubs, db: Database, pg_dsn: str,
        ws: str) -> None:
    kind, server = fake
    server.respond = script(kind, lambda body, n: answer(kind, body, SUPERSEDE))
    await converse(stubs, db, pg_dsn, ws, kind, server, rounds=0)
    [request] = dream_requests(kind, server)
    assert not offered(request)
    assert "look it up with the tools" not in system_of(kind, request)
    assert CARD in user_text(kind, request)  # card and messages are shown all the same
    assert not (await by_content(stubs, ws))["alice lives in Paris"].valid


async def test_the_anthropic_answer_is_a_tool_among_the_lookups_not_a_forced_one(
        stubs: Stubs, db: Database, pg_dsn: str, ws: str) -> None:
    server = FakeAnthropic()
    server.respond = script("anthropic", lambda body, n: answer("anthropic", body, SUPERSEDE))
    async with server:
        await converse(stubs, db, pg_dsn, ws, "anthropic", server)
    [request] = dream_requests("anthropic", server)
    assert request["tool_choice"] == {"type": "any"}  # a lookup, or the answer
    assert request["tools"][-1]["input_schema"] == DREAM_SCHEMA
    assert len(request["tools"]) == len(LOOKUP_TOOLS) + 1


async def test_the_local_provider_answers_a_dream_without_lookups() -> None:
    # Offline, a lookup round would only cost time: the listing is all it reads.
    tools = [ToolSpec("search_messages", "Search.", {
        "type": "object", "properties": {"query": {"type": "string"}},
        "required": ["query"]})]
    prompt = [Message("system", 'You consolidate what is known about "alice".\n'
                      "[1] (explicit, 2023-01-10 09:30) alice lives in Paris\n"
                      "[2] (explicit, 2023-06-01 18:00) alice lives in Berlin"),
              Message("user", "Consolidate.")]
    done = await LocalProvider().complete(prompt, max_tokens=500, response_schema=DREAM_SCHEMA,
                                          tools=tools)
    assert done.tool_calls == []
    assert json.loads(done.text)["superseded"] == [{"old": 1, "new": 2}]
