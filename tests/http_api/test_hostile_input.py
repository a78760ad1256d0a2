"""The HTTP face refuses what JSON and the store cannot hold with a 4xx, never a 500: numbers
that are not finite doubles, strings that are not valid Unicode (lone surrogate escapes), page
numbers whose offset overflows, and times the database would store as ±infinity. Classes
found by an outside fuzzing pass, each checked on several routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from honcho_grpc.server.app import Running

BIG_INT = "1" + "0" * 400  # beyond a double's range


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}",
                                 timeout=30) as client:
        yield client


def workspace() -> str:
    return f"hostile-{uuid.uuid4().hex[:8]}"


async def post_raw(http: httpx.AsyncClient, path: str, body: str) -> httpx.Response:
    return await http.post(path, content=body.encode(),
                           headers={"content-type": "application/json"})


@pytest.mark.parametrize("body", [
    '{"id": "WS", "zzz": NaN}',           # an unknown field FastAPI would echo back
    '{"id": NaN}',
    '{"id": "WS", "metadata": {"k": Infinity}}',
    '{"id": "WS", "metadata": {"k": -1e400}}',
    '{"id": "WS", "metadata": {"k": ' + BIG_INT + '}}',
    '{"id": "WS", "configuration": {"reasoning": {"enabled": 1e999}}}',
])
async def test_numbers_json_cannot_hold_are_refused(http: httpx.AsyncClient,
                                                    body: str) -> None:
    answer = await post_raw(http, "/v3/workspaces", body.replace("WS", workspace()))
    assert answer.status_code == 422, answer.text
    assert "finite" in answer.text or "too large" in answer.text


async def test_lone_surrogates_are_refused_wherever_they_are(
        http: httpx.AsyncClient) -> None:
    ws = workspace()
    base = f"/v3/workspaces/{ws}"
    assert (await http.post("/v3/workspaces", json={"id": ws})).status_code in (200, 201)
    cases = [
        (f"{base}/sessions/s/messages",
         '{"messages": [{"peer_id": "p", "content": "hi \\ud800"}]}'),
        (f"{base}/search", '{"query": "lone \\udfff"}'),
        (f"{base}/peers", '{"id": "p", "configuration": {"\\ud800": 1}}'),
        (f"{base}/peers", '{"id": "p", "zzz": "\\ud800"}'),
        (f"{base}/peers/p/chat", '{"query": "\\udabc what?"}'),
        (f"{base}/webhooks", '{"url": "https://ex\\ud800ample.com/hook"}'),
    ]
    for path, body in cases:
        answer = await post_raw(http, path, body)
        assert answer.status_code == 422, (path, answer.status_code, answer.text)
        assert "surrogate" in answer.text, answer.text
    # A well-formed pair is one character, and is stored as such.
    stored = await post_raw(http, f"{base}/sessions/s/messages",
                            '{"messages": [{"peer_id": "p", "content": "hi \\ud83d\\ude00"}]}')
    assert stored.status_code == 201, stored.text
    assert stored.json()[0]["content"] == "hi \U0001F600"


async def test_a_response_format_deeper_than_the_checker_recurses_is_refused(
        http: httpx.AsyncClient) -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(200):  # gRPC cannot carry this (a Struct nests at most ~30 objects)
        schema = {"type": "object", "properties": {"a": schema}}
    ws = workspace()
    await http.post("/v3/workspaces", json={"id": ws})
    answer = await http.post(f"/v3/workspaces/{ws}/peers/alice/chat",
                             json={"query": "what?", "response_format": schema})
    assert answer.status_code == 422 and "nested" in answer.text, answer.text


async def test_a_page_whose_offset_overflows_is_refused(http: httpx.AsyncClient) -> None:
    for page in (2**31, 2**63 - 1, 10**20):
        answer = await http.post(f"/v3/workspaces/list?page={page}", json={})
        assert answer.status_code == 422, answer.text
        assert "page" in answer.text
    last = await http.post(f"/v3/workspaces/list?page={2**31 - 1}", json={})
    assert last.status_code == 200 and last.json()["items"] == []


@pytest.mark.parametrize("created_at", [
    "0001-01-01T00:00:00Z",            # asyncpg stores it as -infinity
    "9999-12-31T23:59:59.999999Z",     # and this as infinity
    "0001-01-01T00:00:00+14:00",       # before year 1 once in UTC
    "9999-12-31T23:59:59-14:00",       # after year 9999 once in UTC
])
async def test_times_the_store_cannot_keep_are_refused(http: httpx.AsyncClient,
                                                       created_at: str) -> None:
    ws = workspace()
    answer = await http.post(f"/v3/workspaces/{ws}/sessions/s/messages", json={
        "messages": [{"peer_id": "p", "content": "hello", "created_at": created_at}]})
    assert answer.status_code == 422, answer.text
    assert "messages[0].created_at" in answer.text


async def test_times_near_the_edges_are_kept_and_read_back(http: httpx.AsyncClient) -> None:
    ws = workspace()
    path = f"/v3/workspaces/{ws}/sessions/s/messages"
    written = await http.post(path, json={"messages": [
        {"peer_id": "p", "content": "ancient", "created_at": "0001-01-01T00:00:00.000001Z"},
        {"peer_id": "p", "content": "far off", "created_at": "9999-12-31T12:00:00+02:00"},
        {"peer_id": "p", "content": "now"}]})
    assert written.status_code == 201, written.text
    listed = (await http.post(f"{path}/list", json={})).json()["items"]
    assert [m["created_at"][:19] for m in listed[:2]] == ["0001-01-01T00:00:00",
                                                          "9999-12-31T10:00:00"]
    # The peer's chat reads them beside an ordinary time (it sorted by time and failed).
    chat = await http.post(f"/v3/workspaces/{ws}/peers/p/chat", json={"query": "what?"})
    assert chat.status_code == 200, chat.text
