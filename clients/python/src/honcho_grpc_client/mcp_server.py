"""The memory as Model Context Protocol tools: `honcho-grpc mcp` (or `honcho-grpc-mcp`).

An MCP server (the official `mcp` SDK, `pip install 'honcho-grpc-client[mcp]'`) whose tools
call the service through `AsyncHoncho` only, so it runs anywhere a client can reach the gRPC
address, a remote deployment included. One workspace per MCP server (HONCHO_WORKSPACE_ID).

    honcho-grpc mcp                                   # stdio, for a desktop MCP client
    honcho-grpc mcp --transport http --port 8001      # streamable HTTP at /mcp

Tool arguments are checked against the JSON schema the SDK derives from the signatures
below; a call the service refuses comes back as a tool error (`isError`) carrying the gRPC
status and message, never a traceback.
"""

import argparse
import datetime as dt
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from honcho_grpc_client.aio import AsyncHoncho
from honcho_grpc_client.errors import HonchoError
from honcho_grpc_client.types import Message, MessageCreate, Summary

DEFAULT_PORT = 8001  # beside the Honcho-compatible HTTP API's 8000
DEFAULT_LIMIT = 100  # list tools: rows answered unless the caller asks for more

P = ParamSpec("P")
R = TypeVar("R")

# Ids as the service accepts them are checked there (INVALID_ARGUMENT names the field);
# here only what a schema can say cheaply, so a model sees it before calling.
PeerId = Annotated[str, Field(min_length=1, max_length=512,
                               description="a peer's id: a person or an agent")]
SessionId = Annotated[str, Field(min_length=1, max_length=512,
                                 description="a session's id: one conversation")]
Limit = Annotated[int, Field(ge=1, le=1000, description="at most this many rows")]
ReasoningLevel = Literal["minimal", "low", "medium", "high", "max"]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                        open_world_hint=False)


# --------------------------------------------------------------------------- tool shapes


class MessageInput(BaseModel):
    """One message to store: who said it and what."""

    peer_id: PeerId = Field(description="the peer who said it (created if new)")
    content: str = Field(description="the text")
    metadata: dict[str, Any] | None = Field(default=None, description="any JSON object")


class MessageOut(BaseModel):
    id: str
    session_id: str
    peer_id: str
    content: str
    sequence: int
    token_count: int
    created_at: dt.datetime | None
    metadata: dict[str, Any]
    score: float | None = Field(default=None, description="search relevance, when searched")

    @classmethod
    def of(cls, m: Message) -> "MessageOut":
        return cls(id=m.id, session_id=m.session_id, peer_id=m.peer_id, content=m.content,
                   sequence=m.sequence, token_count=m.token_count, created_at=m.created_at,
                   metadata=m.metadata, score=m.score)


class SessionOut(BaseModel):
    id: str
    active: bool | None
    created_at: dt.datetime | None
    metadata: dict[str, Any]


class PeerOut(BaseModel):
    id: str
    created_at: dt.datetime | None
    metadata: dict[str, Any]


class SummaryOut(BaseModel):
    content: str
    last_message_sequence: int
    token_count: int

    @classmethod
    def of(cls, s: Summary | None) -> "SummaryOut | None":
        if s is None:
            return None
        return cls(content=s.content, last_message_sequence=s.last_message_sequence,
                   token_count=s.token_count)


class ContextOut(BaseModel):
    session_id: str
    messages: list[MessageOut]
    summary: SummaryOut | None
    peer_representation: str
    peer_card: list[str]


class SummariesOut(BaseModel):
    session_id: str
    short: SummaryOut | None
    long: SummaryOut | None


class ChatOut(BaseModel):
    answer: str
    conclusion_ids: list[str] = Field(description="the conclusions the answer drew on")


class CardOut(BaseModel):
    peer_id: str
    target_id: str
    card: list[str]


class RepresentationOut(BaseModel):
    peer_id: str
    target_id: str
    representation: str = Field(description="markdown: what peer_id holds about target_id")


# --------------------------------------------------------------------------- the server


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A refused call becomes a tool error with the gRPC status and message: the SDK shows a
    `ToolError`'s text to the model, anything else only as "Error executing tool"."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except HonchoError as e:
            raise ToolError(describe(e)) from None
        except ValueError as e:  # the client's own argument checks, e.g. reasoning_level
            raise ToolError(str(e)) from None

    return call


def describe(e: HonchoError) -> str:
    """The status, message and reason, e.g. "NOT_FOUND: session not found (...)
    [SESSION_NOT_FOUND]", plus any field violation the message does not already name."""
    unsaid = [f"{v.field}: {v.description}" for v in e.field_violations
              if f"{v.field}: {v.description}" not in e.message]
    return f"{e} ({'; '.join(unsaid)})" if unsaid else str(e)


async def _take(items: AsyncIterator[R], limit: int) -> list[R]:
    out: list[R] = []
    async for item in items:
        out.append(item)
        if len(out) >= limit:
            break
    return out


def build_server(honcho: AsyncHoncho) -> MCPServer[Any]:
    """The MCP server over one client (one workspace); the client is closed with it."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await honcho.close()

    server: MCPServer[Any] = MCPServer(
        "honcho-grpc", version="0.1.0", lifespan=lifespan,
        instructions=(f"Long-term memory of workspace {honcho.workspace_id!r}: store the "
                      "conversation with add_messages, then search it, ask what a peer is "
                      "like with chat, or fetch a session's context for your next prompt."))
    _register_writes(server, honcho)
    _register_reads(server, honcho)
    _register_lists(server, honcho)
    return server


def _register_writes(server: MCPServer[Any], honcho: AsyncHoncho) -> None:
    @server.tool(annotations=WRITE)
    @tool_errors
    async def add_messages(session_id: SessionId, messages: Annotated[
            list[MessageInput], Field(min_length=1, max_length=1000)]) -> list[MessageOut]:
        """Store messages in a session, in order (the session and peers are created if
        new). The memory learns from them in the background."""
        session = await honcho.session(session_id, create=False)
        written = await session.add_messages(
            [MessageCreate(peer_id=m.peer_id, content=m.content, metadata=m.metadata)
             for m in messages])
        return [MessageOut.of(m) for m in written]


def _register_reads(server: MCPServer[Any], honcho: AsyncHoncho) -> None:
    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def search(query: Annotated[str, Field(min_length=1)],
                     session_id: SessionId | None = None, peer_id: PeerId | None = None,
                     limit: Limit = 10) -> list[MessageOut]:
        """Find stored messages by meaning and words: in one session, from one peer, or
        (neither given) in the whole workspace."""
        filters = {"peer_id": peer_id} if session_id and peer_id else None
        if session_id:
            session = await honcho.session(session_id, create=False)
            hits = await session.search(query, filters, limit)
        elif peer_id:
            hits = await (await honcho.peer(peer_id)).search(query, None, limit)
        else:
            hits = await honcho.search(query, None, limit)
        return [MessageOut.of(m) for m in hits]

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def chat(peer_id: PeerId, query: Annotated[str, Field(min_length=1)],
                   ctx: Context[Any, Any], target_id: PeerId | None = None,
                   session_id: SessionId | None = None,
                   reasoning_level: ReasoningLevel | None = None) -> ChatOut:
        """Ask the memory a question about a peer: what peer_id knows about target_id
        (default: about itself), optionally within one session. The answer streams as
        progress notifications (each carries the next piece of text) when the caller
        asks for progress."""
        peer = await honcho.peer(peer_id)
        stream = peer.chat(query, target=target_id, session=session_id,
                           reasoning_level=reasoning_level, stream=True)
        async with stream:
            pieces = 0
            async for delta in stream:
                pieces += 1
                await ctx.report_progress(pieces, None, delta)
        completion = stream.completion
        return ChatOut(answer=stream.text,
                       conclusion_ids=completion.conclusion_ids if completion else [])

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_context(session_id: SessionId,
                          tokens: Annotated[int, Field(ge=1)] | None = None,
                          peer_target: PeerId | None = None, peer_perspective: PeerId | None = None,
                          search_query: str | None = None,
                          summary: bool = True) -> ContextOut:
        """A session's recent messages within a token budget, its summary, and (with
        peer_target) what peer_perspective (default: the memory itself) knows about that
        peer: ready to put in a prompt."""
        session = await honcho.session(session_id, create=False)
        c = await session.context(tokens, summary=summary, peer_target=peer_target,
                                  peer_perspective=peer_perspective,
                                  search_query=search_query)
        return ContextOut(session_id=c.session_id, messages=[MessageOut.of(m) for m in c.messages],
                          summary=SummaryOut.of(c.summary),
                          peer_representation=c.peer_representation, peer_card=c.peer_card)

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_peer_card(peer_id: PeerId, target_id: PeerId | None = None) -> CardOut:
        """The short list of key facts peer_id keeps about target_id (default: itself)."""
        card = await (await honcho.peer(peer_id)).get_card(target_id)
        return CardOut(peer_id=peer_id, target_id=target_id or peer_id, card=card)

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_representation(peer_id: PeerId, target_id: PeerId | None = None,
                                 session_id: SessionId | None = None,
                                 search_query: str | None = None,
                                 max_conclusions: Annotated[int, Field(ge=1)] | None = None,
                                 ) -> RepresentationOut:
        """Everything peer_id has concluded about target_id (default: itself), optionally
        only from one session or the conclusions closest to search_query."""
        text = await (await honcho.peer(peer_id)).representation(
            session_id, target_id, search_query=search_query, max_conclusions=max_conclusions)
        return RepresentationOut(peer_id=peer_id, target_id=target_id or peer_id,
                                 representation=text)

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_summaries(session_id: SessionId) -> SummariesOut:
        """The short and long summaries of a session (null until written)."""
        s = await (await honcho.session(session_id, create=False)).summaries()
        return SummariesOut(session_id=s.session_id, short=SummaryOut.of(s.short),
                            long=SummaryOut.of(s.long))


def _register_lists(server: MCPServer[Any], honcho: AsyncHoncho) -> None:
    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_sessions(peer_id: PeerId | None = None, limit: Limit = DEFAULT_LIMIT
                            ) -> list[SessionOut]:
        """The workspace's sessions, oldest first, or only those peer_id is in."""
        found = (await honcho.peer(peer_id)).sessions() if peer_id else honcho.sessions()
        return [SessionOut(id=s.id, active=s.active, created_at=s.created_at,
                           metadata=s.metadata or {}) for s in await _take(found, limit)]

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_peers(limit: Limit = DEFAULT_LIMIT) -> list[PeerOut]:
        """The workspace's peers (people and agents), oldest first."""
        return [PeerOut(id=p.id, created_at=p.created_at, metadata=p.metadata or {})
                for p in await _take(honcho.peers(), limit)]

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_messages(session_id: SessionId, limit: Limit = DEFAULT_LIMIT,
                            newest_first: bool = False) -> list[MessageOut]:
        """A session's messages in order (newest_first: the latest ones)."""
        session = await honcho.session(session_id, create=False)
        return [MessageOut.of(m)
                for m in await _take(session.messages(reverse=newest_first), limit)]


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio (an MCP client starts this command) or streamable HTTP "
                             "(default: stdio)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="with --transport http: address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"with --transport http: port (default: {DEFAULT_PORT}); the "
                             "endpoint is /mcp")
    parser.add_argument("--address", default=None,
                        help="the honcho-grpc server, host:port (default: HONCHO_ADDRESS, else "
                             "localhost:50051)")
    parser.add_argument("--token", default=None,
                        help="API key, when the server checks them (default: HONCHO_API_KEY)")
    parser.add_argument("--workspace", default=None,
                        help="workspace id (default: HONCHO_WORKSPACE_ID, else default)")
    parser.add_argument("--tls", action="store_true",
                        help="reach the server over TLS (the system's root certificates)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "honcho-grpc-mcp") -> None:
    parser = add_arguments(argparse.ArgumentParser(
        prog=prog, description="Serve the honcho-grpc memory as MCP tools."))
    args = parser.parse_args(argv)
    honcho = AsyncHoncho(address=args.address, workspace_id=args.workspace,
                         token=args.token, tls=args.tls)
    server = build_server(honcho)
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the server, without a traceback


if __name__ == "__main__":
    main()
