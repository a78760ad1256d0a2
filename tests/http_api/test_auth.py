"""The HTTP face with auth on: the unmodified `honcho-ai` SDK with a bearer JWT (its `api_key`),
Honcho's 401 `{"detail"}` for a missing, forged or expired token and for a token that may not
make the call, and the same policy as the gRPC face (server/auth.py) for workspace, peer and
session keys, keys minted by POST /v3/keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from honcho import Honcho
from honcho.http.exceptions import AuthenticationError

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from honcho_grpc.server.auth import Claims, mint_token
from tests.conftest import make_settings
from tests.http_api.test_typescript_sdk import NODE, TS_DIR, ensure_sdk, run

SECRET = "http-auth-test-secret-" + "h" * 40


def key(**claims: str | bool) -> str:
    return mint_token(SECRET, Claims(**claims))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def auth_http(pg_dsn: str, db: Database) -> AsyncIterator[str]:
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})
    running: Running = await start(settings, db, embedder=FakeEmbedder(384), background=False)
    yield f"http://127.0.0.1:{running.http_port}"
    await running.stop(grace=1.0)


def sdk(base_url: str, workspace: str, api_key: str) -> Honcho:
    return Honcho(base_url=base_url, workspace_id=workspace, api_key=api_key, max_retries=0)


def _workspace_key_scenario(base_url: str, ws: str, other: str) -> None:
    mine = sdk(base_url, ws, key(workspace=ws))
    alice = mine.peer("alice")
    session = mine.session("s1")
    session.add_messages([alice.message("I adopted a puppy named Biscuit")])
    assert [m.content for m in session.messages()] == ["I adopted a puppy named Biscuit"]
    assert alice.chat("what is my dog called?")
    assert "".join(alice.chat_stream("what is my dog called?"))
    # The same key pointed at another workspace: refused before anything is read or made.
    with pytest.raises(AuthenticationError):
        sdk(base_url, other, key(workspace=ws)).peer("alice")
    with pytest.raises(AuthenticationError):  # listing workspaces is for admin keys
        list(mine.workspaces())


async def test_workspace_key_through_the_sdk(auth_http: str) -> None:
    ws, other = (f"auth-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await asyncio.to_thread(_workspace_key_scenario, auth_http, ws, other)
    async with httpx.AsyncClient(base_url=auth_http) as http:
        admin = {"authorization": f"Bearer {key(admin=True)}"}
        made = await http.post("/v3/workspaces", json={"id": other}, headers=admin)
        assert made.status_code == 201
        # The shared database holds every other test's workspaces: walk all the pages.
        seen: set[str] = set()
        page, pages = 1, 1
        while page <= pages:
            listed = await http.post(f"/v3/workspaces/list?page={page}&size=100", headers=admin)
            assert listed.status_code == 200
            seen |= {w["id"] for w in listed.json()["items"]}
            pages = listed.json()["pages"]
            page += 1
        assert {ws, other} <= seen


@pytest.mark.parametrize(("headers", "detail"), [
    ({}, "missing"),
    ({"authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
    ({"authorization": f"Bearer {mint_token('another-secret-' + 'x' * 40, Claims(admin=True))}"},
     "invalid"),
    ({"authorization": "Bearer " + mint_token(SECRET, Claims(admin=True),
                                               datetime.now(UTC) - timedelta(hours=1))},
     "expired"),
], ids=["missing", "not-bearer", "forged", "expired"])
async def test_bad_tokens_get_401_and_a_detail(auth_http: str, headers: dict[str, str],
                                               detail: str) -> None:
    async with httpx.AsyncClient(base_url=auth_http) as http:
        answer = await http.post("/v3/workspaces", json={"id": "w"}, headers=headers)
    assert answer.status_code == 401
    assert detail in answer.json()["detail"]


async def test_peer_and_session_keys_are_limited_as_on_grpc(auth_http: str) -> None:
    ws = f"auth-{uuid.uuid4().hex[:8]}"
    admin = {"authorization": f"Bearer {key(admin=True)}"}

    def as_(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    alice, session_key = as_(key(workspace=ws, peer="alice")), as_(key(workspace=ws, session="s1"))
    base = f"/v3/workspaces/{ws}"
    async with httpx.AsyncClient(base_url=auth_http) as http:
        setup = await http.post(f"{base}/sessions", headers=admin, json={
            "id": "s1", "peers": {"alice": {}, "bob": {}}})
        assert setup.status_code == 201
        await http.post(f"{base}/sessions", headers=admin, json={"id": "s2", "peers": {"bob": {}}})

        async def status(method: str, path: str, headers: dict[str, str], **kw: Any) -> int:
            answer = await http.request(method, f"{base}{path}", headers=headers, **kw)
            if answer.status_code == 401:
                assert answer.json()["detail"], answer.text
            return answer.status_code

        # A peer key acts as its peer, and reads the sessions it is a member of...
        assert await status("PUT", "/peers/alice/card", alice, json={"peer_card": ["a"]}) == 200
        assert await status("GET", "/peers/alice/card", alice) == 200
        assert await status("POST", "/peers/alice/chat", alice, json={"query": "hi"}) == 200
        assert await status("POST", "/sessions/s1/messages/list", alice) == 200
        # ... but not as another peer, nor sessions it is not in, nor workspace-wide lists.
        assert await status("GET", "/peers/bob/card", alice) == 401
        assert await status("POST", "/peers/bob/chat", alice, json={"query": "hi"}) == 401
        assert await status("POST", "/sessions/s2/messages/list", alice) == 401
        assert await status("POST", "/peers/list", alice) == 401
        # A session key writes and reads its session only.
        written = await status("POST", "/sessions/s1/messages", session_key, json={
            "messages": [{"peer_id": "bob", "content": "hello"}]})
        assert written == 201
        assert await status("POST", "/sessions/s1/messages/list", session_key) == 200
        assert await status("POST", "/sessions/s2/messages/list", session_key) == 401
        assert await status("POST", "/sessions/s2/messages", session_key, json={
            "messages": [{"peer_id": "bob", "content": "x"}]}) == 401
        # What the refused calls would have written is not there.
        listed = await http.post(f"{base}/sessions/s2/messages/list", headers=admin)
        assert listed.json()["total"] == 0


async def test_a_member_peer_key_reaches_no_further_than_on_grpc(auth_http: str) -> None:
    """Each route hands the policy every name its body or query carries (peers, observers,
    sessions), as the gRPC twin's request would: a member may join or leave itself, not add,
    re-configure or remove others; it concludes, queries, dreams and reads queue status as
    itself only."""
    ws = f"auth-{uuid.uuid4().hex[:8]}"
    admin = {"authorization": f"Bearer {key(admin=True)}"}
    alice = {"authorization": f"Bearer {key(workspace=ws, peer='alice')}"}
    base = f"/v3/workspaces/{ws}"
    async with httpx.AsyncClient(base_url=auth_http) as http:
        async def status(method: str, path: str, headers: dict[str, str], **kw: Any) -> int:
            return (await http.request(method, f"{base}{path}", headers=headers, **kw)
                    ).status_code

        assert await status("POST", "/sessions", admin, json={
            "id": "s1", "peers": {"alice": {}, "bob": {}}}) == 201
        # Get-or-create naming other peers would add or re-configure them.
        assert await status("POST", "/sessions", alice, json={
            "id": "s1", "peers": {"carol": {}}}) == 401
        assert await status("POST", "/sessions", alice, json={
            "id": "s1", "peers": {"bob": {"observe_me": False}}}) == 401
        assert await status("POST", "/sessions", alice, json={
            "id": "s1", "peers": {"alice": {}}}) == 200
        assert await status("DELETE", "/sessions/s1/peers", alice, json=["bob"]) == 401
        members = (await http.get(f"{base}/sessions/s1/peers", headers=admin)).json()
        assert {p["id"] for p in members["items"]} == {"alice", "bob"}
        # Conclusions, queue status and dreams: as its own observer.
        own = {"conclusions": [{"observer_id": "alice", "observed_id": "bob",
                                "content": "bob plays chess", "session_id": "s1"}]}
        other = {"conclusions": [{"observer_id": "bob", "observed_id": "alice",
                                  "content": "alice plays chess"}]}
        assert await status("POST", "/conclusions", alice, json=own) == 201
        assert await status("POST", "/conclusions", alice, json=other) == 401
        assert await status("POST", "/conclusions/query", alice, json={
            "query": "chess", "filters": {"observer": "alice", "observed": "bob"}}) == 200
        assert await status("POST", "/conclusions/query", alice, json={
            "query": "chess", "filters": {"observer": "bob", "observed": "alice"}}) == 401
        assert await status("GET", "/queue/status?observer_id=alice", alice) == 200
        assert await status("GET", "/queue/status?observer_id=bob", alice) == 401
        assert await status("POST", "/schedule_dream", alice, json={"observer": "bob"}) == 401
        # Leaving is its own to do.
        assert await status("DELETE", "/sessions/s1/peers", alice, json=["alice"]) == 200


async def test_keys_route_mints_keys_that_work(auth_http: str) -> None:
    ws = f"auth-{uuid.uuid4().hex[:8]}"
    admin = {"authorization": f"Bearer {key(admin=True)}"}
    async with httpx.AsyncClient(base_url=auth_http) as http:
        made = await http.post("/v3/keys", params={"workspace_id": ws}, headers=admin)
        assert made.status_code == 200
        minted = {"authorization": f"Bearer {made.json()['key']}"}
        assert (await http.post("/v3/workspaces", json={"id": ws}, headers=minted)
                ).status_code == 201
        # Only admin keys mint; a key names at least its workspace (as Honcho).
        assert (await http.post("/v3/keys", params={"workspace_id": ws}, headers=minted)
                ).status_code == 401
        unscoped = await http.post("/v3/keys", headers=admin)
        assert unscoped.status_code == 422 and "workspace_id" in unscoped.json()["detail"]
        past = await http.post("/v3/keys", headers=admin, params={
            "workspace_id": ws, "expires_at": "2001-01-01T00:00:00Z"})
        assert past.status_code == 422 and "expires_at" in past.json()["detail"]
        beyond = await http.post("/v3/keys", headers=admin, params={
            "workspace_id": ws, "expires_at": "9999-12-31T23:59:59-14:00"})  # past year 9999
        assert beyond.status_code == 422 and "expires_at" in beyond.json()["detail"]


@pytest.mark.skipif(NODE is None, reason="node is needed to run @honcho-ai/sdk (not on PATH)")
async def test_typescript_sdk_with_a_key(auth_http: str) -> None:
    """@honcho-ai/sdk reads the key from HONCHO_API_KEY, as its docs say (ts/auth.mjs)."""
    assert NODE is not None
    ws = f"auth-{uuid.uuid4().hex[:8]}"
    await ensure_sdk()
    out = await run([NODE, str(TS_DIR / "auth.mjs")], env={
        "HONCHO_URL": auth_http, "HONCHO_WORKSPACE_ID": ws,
        "HONCHO_API_KEY": key(workspace=ws), "OTHER_WORKSPACE_KEY": key(workspace=ws + "x")})
    assert "auth scenario passed" in out, out



def _scope_setup(base_url: str, ws: str) -> None:
    mine = sdk(base_url, ws, key(workspace=ws))
    alice = mine.peer("alice")
    inside = mine.session("inside", scopes=["team"])
    inside.add_peers([alice])
    mine.session("outside")
    team = mine.scope("team")
    team.add_sessions(["outside"])
    assert [s.id for s in team.sessions()] == ["inside", "outside"]
    assert alice.chat("hello?", scope="team")


async def test_scopes_need_a_workspace_key(auth_http: str) -> None:
    """Scopes span sessions: workspace (and admin) keys only, on the scope routes and on the
    `scope` option; a peer key's session allowlist needs its membership of every session."""
    ws = f"auth-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_scope_setup, auth_http, ws)
    base = f"/v3/workspaces/{ws}"
    alice = {"authorization": f"Bearer {key(workspace=ws, peer='alice')}"}
    session_key = {"authorization": f"Bearer {key(workspace=ws, session='inside')}"}
    async with httpx.AsyncClient(base_url=auth_http) as http:
        async def status(method: str, path: str, headers: dict[str, str], **kw: Any) -> int:
            return (await http.request(method, f"{base}{path}", headers=headers, **kw)
                    ).status_code

        chat = "/peers/alice/chat"
        assert await status("POST", chat, alice, json={"query": "hi"}) == 200
        assert await status("POST", chat, alice, json={
            "query": "hi", "filters": {"session_id": ["inside"]}}) == 200  # a member there
        for refused in [
            ("POST", "/scopes", alice, {"json": {"id": "team"}}),
            ("POST", "/scopes/list", alice, {}),
            ("GET", "/scopes/team/status", session_key, {}),
            ("POST", "/scopes/team/sessions", session_key, {"json": {"session_ids": ["inside"]}}),
            ("POST", chat, alice, {"json": {"query": "hi", "scope": "team"}}),
            ("POST", chat, alice, {"json": {"query": "hi",
                                            "filters": {"session_id": ["outside"]}}}),
            ("POST", "/peers/alice/representation", alice, {"json": {"scope": "team"}}),
            ("POST", "/sessions", session_key, {"json": {"id": "inside", "scopes": ["team"]}}),
            ("POST", "/search", alice, {"json": {"query": "x", "scope": "team"}}),
            ("GET", "/sessions/inside/context", alice,
             {"params": {"peer_target": "alice", "scope": "team"}}),
        ]:
            method, path, headers, kw = refused
            assert await status(method, path, headers, **kw) == 401, refused
