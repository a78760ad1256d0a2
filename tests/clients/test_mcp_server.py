"""`honcho-grpc mcp` driven by the MCP SDK's own client (`mcp.ClientSession`), over stdio
(the command started as a subprocess, as a desktop MCP client starts it) and over streamable
HTTP (the command with `--transport http --port`), against the live in-process server.

The MCP server reaches the service only through the Python client, at the gRPC address it
is given, exactly as it would reach a remote deployment.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from honcho_grpc_client import AsyncHoncho
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.conftest import make_settings

from .conftest import CLIENT_SRC
from .test_client_auth import SECRET, token

ROOT = CLIENT_SRC.parents[2]
PYTHONPATH = os.pathsep.join(str(p) for p in (ROOT, CLIENT_SRC, ROOT / "proto/python/src"))
TOOLS = {"add_messages", "search", "chat", "get_context", "get_peer_card",
         "get_representation", "get_summaries", "list_sessions", "list_peers", "list_messages"}


def _command_env(address: str, ws: str) -> dict[str, str]:
    return {"HONCHO_ADDRESS": address, "HONCHO_WORKSPACE_ID": ws, "PYTHONPATH": PYTHONPATH,
            "GRPC_VERBOSITY": "ERROR"}


@asynccontextmanager
async def over_stdio(address: str, ws: str, *flags: str,
                     **env: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "honcho_grpc.cli", "mcp", *flags],
                                   env=_command_env(address, ws) | env, cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if process.returncode is not None:
            raise RuntimeError(f"honcho-grpc mcp exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"honcho-grpc mcp did not listen on {port}")


@asynccontextmanager
async def over_http(address: str, ws: str) -> AsyncIterator[ClientSession]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "honcho_grpc.cli", "mcp", "--transport", "http",
        "--port", str(port), cwd=ROOT, env={**os.environ, **_command_env(address, ws)},
        stdout=asyncio.subprocess.DEVNULL)
    try:
        await _wait_for_port(port, process)
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(
                streamable_http_client(f"http://127.0.0.1:{port}/mcp"))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            yield session
    finally:
        process.terminate()
        await process.wait()


TRANSPORTS = {"stdio": over_stdio, "http": over_http}


@pytest.fixture
def address(server: Running) -> str:
    return f"127.0.0.1:{server.port}"


def structured(result: CallToolResult) -> Any:
    """The tool's structured answer; lists come wrapped as {"result": [...]}."""
    assert not result.is_error, text(result)
    data = result.structured_content
    assert data is not None
    value = data["result"] if set(data) == {"result"} else data
    # The text form carries the same JSON (one block per item of a list), for clients that
    # read only text.
    blocks = [json.loads(c.text) for c in result.content if isinstance(c, TextContent)]
    assert blocks == (value if isinstance(value, list) else [value])
    return value


def text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def failure(result: CallToolResult) -> str:
    assert result.is_error, result
    message = text(result)
    assert "Traceback" not in message and "File \"" not in message
    return message


async def _seed(address: str, ws: str) -> str:
    """What the tools cannot write (a card, a conclusion): through the Python client."""
    async with AsyncHoncho(address=address, workspace_id=ws) as honcho:
        alice = await honcho.peer("alice")
        await alice.set_card(["IDENTITY: alice, a nurse in Lyon"])
        [fact] = await alice.add_conclusions(["alice works as a nurse in Lyon"])
        return fact.id


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_every_tool(address: str, ws: str, transport: str) -> None:
    async with TRANSPORTS[transport](address, ws) as mcp:
        listed = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(listed) == TOOLS
        schema = listed["add_messages"].input_schema
        assert set(schema["required"]) == {"session_id", "messages"}
        assert listed["chat"].input_schema["properties"]["reasoning_level"]["anyOf"][0][
            "enum"] == ["minimal", "low", "medium", "high", "max"]

        written = structured(await mcp.call_tool("add_messages", {
            "session_id": "s1",
            "messages": [{"peer_id": "alice", "content": "I work as a nurse in Lyon",
                          "metadata": {"mood": "tired"}},
                         {"peer_id": "bob", "content": "I teach maths to teenagers"}]}))
        assert [(m["sequence"], m["peer_id"]) for m in written] == [(1, "alice"), (2, "bob")]
        assert written[0]["metadata"] == {"mood": "tired"}
        structured(await mcp.call_tool("add_messages", {
            "session_id": "s2", "messages": [{"peer_id": "bob", "content": "maths again"}]}))

        await _search_and_lists(mcp)
        fact_id = await _seed(address, ws)
        await _memory_reads(mcp, fact_id, written[1]["token_count"])
        await _errors(mcp)


async def _search_and_lists(mcp: ClientSession) -> None:
    hits = structured(await mcp.call_tool("search", {"query": "nurse Lyon",
                                                      "session_id": "s1"}))
    assert hits[0]["content"] == "I work as a nurse in Lyon" and hits[0]["score"] is not None
    from_bob = structured(await mcp.call_tool("search", {"query": "maths", "peer_id": "bob"}))
    assert {h["session_id"] for h in from_bob} == {"s1", "s2"}
    assert {h["peer_id"] for h in from_bob} == {"bob"}
    in_s1_from_bob = structured(await mcp.call_tool(
        "search", {"query": "maths", "session_id": "s1", "peer_id": "bob"}))
    assert [h["content"] for h in in_s1_from_bob] == ["I teach maths to teenagers"]
    everywhere = structured(await mcp.call_tool("search", {"query": "maths", "limit": 1}))
    assert len(everywhere) == 1

    assert [m["content"] for m in structured(await mcp.call_tool(
        "list_messages", {"session_id": "s1"}))] == ["I work as a nurse in Lyon",
                                                     "I teach maths to teenagers"]
    latest = structured(await mcp.call_tool("list_messages", {
        "session_id": "s1", "limit": 1, "newest_first": True}))
    assert [m["peer_id"] for m in latest] == ["bob"]
    assert [s["id"] for s in structured(await mcp.call_tool("list_sessions", {}))] == \
        ["s1", "s2"]
    assert [s["id"] for s in structured(await mcp.call_tool(
        "list_sessions", {"peer_id": "alice"}))] == ["s1"]
    assert [s["id"] for s in structured(await mcp.call_tool(
        "list_sessions", {"limit": 1}))] == ["s1"]
    assert [p["id"] for p in structured(await mcp.call_tool("list_peers", {}))] == \
        ["alice", "bob"]


async def _memory_reads(mcp: ClientSession, fact_id: str, last_tokens: int) -> None:
    card = structured(await mcp.call_tool("get_peer_card", {"peer_id": "alice"}))
    assert card == {"peer_id": "alice", "target_id": "alice",
                    "card": ["IDENTITY: alice, a nurse in Lyon"]}
    representation = structured(await mcp.call_tool("get_representation",
                                                    {"peer_id": "alice"}))
    assert "nurse" in representation["representation"]

    context = structured(await mcp.call_tool("get_context", {
        "session_id": "s1", "tokens": 2000, "peer_target": "alice"}))
    assert [m["content"] for m in context["messages"]][-1] == "I teach maths to teenagers"
    assert "nurse" in context["peer_representation"]
    assert context["peer_card"] == ["IDENTITY: alice, a nurse in Lyon"]
    small = structured(await mcp.call_tool("get_context", {"session_id": "s1",
                                                            "tokens": last_tokens}))
    assert [m["peer_id"] for m in small["messages"]] == ["bob"]  # the budget is honoured

    summaries = structured(await mcp.call_tool("get_summaries", {"session_id": "s1"}))
    assert summaries == {"session_id": "s1", "short": None, "long": None}  # no worker here

    deltas: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        assert message is not None and done == len(deltas) + 1
        deltas.append(message)

    answer = structured(await mcp.call_tool(
        "chat", {"peer_id": "alice", "query": "What is alice's job as a nurse?"},
        progress_callback=progress))
    assert "nurse" in answer["answer"] and fact_id in answer["conclusion_ids"]
    assert len(deltas) > 1 and "".join(deltas) == answer["answer"]  # streamed as progress
    quiet = structured(await mcp.call_tool(
        "chat", {"peer_id": "alice", "query": "What is alice's job as a nurse?",
                 "session_id": "s1", "reasoning_level": "minimal"}))
    assert "nurse" in quiet["answer"]


async def _errors(mcp: ClientSession) -> None:
    # Refused by the service: the gRPC status and message, naming the session / the field.
    missing = failure(await mcp.call_tool("get_summaries", {"session_id": "nope"}))
    assert "NOT_FOUND: session not found" in missing and "'nope'" in missing
    assert missing.endswith("[SESSION_NOT_FOUND]")
    empty = failure(await mcp.call_tool("add_messages", {
        "session_id": "s1", "messages": [{"peer_id": "alice", "content": ""}]}))
    assert "INVALID_ARGUMENT: " in empty and "content" in empty
    bad_id = failure(await mcp.call_tool("get_peer_card", {"peer_id": "not a valid id!"}))
    assert "INVALID_ARGUMENT: " in bad_id and "peer_id" in bad_id
    # Refused by the tool's schema before any call: the argument is named.
    no_messages = failure(await mcp.call_tool("add_messages", {"session_id": "s1",
                                                               "messages": []}))
    assert "messages" in no_messages
    level = failure(await mcp.call_tool("chat", {"peer_id": "alice", "query": "x",
                                                 "reasoning_level": "extreme"}))
    assert "reasoning_level" in level
    unknown_type = failure(await mcp.call_tool("list_peers", {"limit": "many"}))
    assert "limit" in unknown_type
    # Nothing was written by the refused calls.
    assert len(structured(await mcp.call_tool("list_messages", {"session_id": "s1"}))) == 2


async def test_unreachable_service_is_a_tool_error(ws: str) -> None:
    """No service at the address: a tool error saying UNAVAILABLE, and the MCP server lives
    on."""
    async with over_stdio(f"127.0.0.1:{_free_port()}", ws) as mcp:
        message = failure(await mcp.call_tool("list_peers", {}))
        assert "UNAVAILABLE: " in message
        assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS


async def test_token_reaches_the_service(pg_dsn: str, db: Database, ws: str) -> None:
    """Against a server that checks keys: HONCHO_API_KEY (or --token) is sent on every call,
    and a call without one is refused as UNAUTHENTICATED, a tool error like any other."""
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})
    running = await start(settings, db, embedder=FakeEmbedder(settings.embedding.dimensions),
                          background=False)
    address = f"127.0.0.1:{running.port}"
    try:
        key = token(w=ws)  # a key for this workspace only
        async with over_stdio(address, ws, HONCHO_API_KEY=key) as mcp:
            structured(await mcp.call_tool("add_messages", {
                "session_id": "s", "messages": [{"peer_id": "alice", "content": "hi"}]}))
            assert [p["id"] for p in structured(await mcp.call_tool("list_peers", {}))] == \
                ["alice"]
        async with over_stdio(address, ws, "--token", key) as mcp:
            assert len(structured(await mcp.call_tool("list_messages",
                                                      {"session_id": "s"}))) == 1
        async with over_stdio(address, ws) as mcp:
            assert "UNAUTHENTICATED: " in failure(await mcp.call_tool("list_peers", {}))
    finally:
        await running.stop(grace=1.0)
