"""What every route shares: the dependencies, the shared validation (server/validate.py's
Checker, fed the same proto values the gRPC face checks), Honcho's page/size pagination
(domain/paging.py), and the token check (server/auth.py's Authorizer and policies)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from fastapi import HTTPException, Query, Request
from google.protobuf import empty_pb2
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message as ProtoMessage
from honcho_grpc_proto.v1 import resources_pb2

from honcho_grpc.domain import scopes
from honcho_grpc.domain.idempotent import Retry
from honcho_grpc.domain.paging import numbered_page
from honcho_grpc.errors import HonchoError
from honcho_grpc.model import Page
from honcho_grpc.server import convert
from honcho_grpc.server.auth import Authorizer
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.validate import Checker, scope_id

T = TypeVar("T")
Json = dict[str, Any]


def deps(request: Request) -> Deps:
    found: Deps = request.app.state.deps
    return found


async def authorize(request: Request, method: str, proto: ProtoMessage) -> None:
    """The gRPC face's policy for the equivalent RPC (`method`, e.g. "PeerService/GetPeer"),
    applied to a request naming the same workspace, peer and session; no-op with auth off."""
    authorizer: Authorizer | None = request.app.state.authorizer
    if authorizer is None:
        return
    headers = [(k, v) for k, v in request.headers.items() if k == "authorization"]
    claims = authorizer.claims(headers)
    await authorizer.check(f"/honcho.v1.{method}", claims, proto)


def metadata(c: Checker, field: str, value: Json | None) -> Json:
    if not value:
        return {}
    try:
        return c.struct(field, convert.struct(value))
    except (ValueError, OverflowError):  # NaN; an integer beyond a double's range
        c.fail(field, "must be a JSON object of finite values")
        return {}


def configuration(c: Checker, field: str, value: Json | None,
                  cls: type[ProtoMessage] = resources_pb2.Configuration) -> Json:
    """Normalised the way the gRPC face stores it (proto field names, unknown keys dropped)."""
    if not value:
        return {}
    try:
        proto = convert.from_dict(value, cls)
    except ParseError as exc:
        c.fail(field, f"is not a valid configuration: {exc}")
        return {}
    if cls is not resources_pb2.PeerConfiguration:
        c.configuration(field, proto)
    return convert.to_dict(proto)


def once(method: str) -> Retry[empty_pb2.Empty]:
    """HTTP writes carry no request_id: run once, nothing remembered for replay."""
    return Retry("", method, empty_pb2.Empty(), empty_pb2.Empty)


# How often a route working for a client that may have gone checks that it is still there.
DISCONNECT_POLL_SECONDS = 0.5


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result; cancelled (and so its model call closed) once the client hangs up.
    uvicorn does not cancel a route whose client left, and a chat's model call would run
    on to its end for nobody."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait([task], timeout=DISCONNECT_POLL_SECONDS)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                # nginx's "client closed request": logged nowhere, read by nobody.
                raise HTTPException(status_code=499, detail="the client closed the request")
        return await task
    finally:
        task.cancel()


class Capture(Generic[T]):
    """A domain write's `respond` callback keeping the domain value for the JSON answer."""

    value: T

    def __call__(self, value: T) -> empty_pb2.Empty:
        self.value = value
        return empty_pb2.Empty()


# Pages are numbered in int32, as gRPC's page sizes are: the offset (page - 1) * size then
# always fits PostgreSQL's bigint.
MAX_PAGE = 2**31 - 1


class Paging:
    """Query `page` (1-based), `size` (1-100, default 50) and `reverse`, as Honcho takes them."""

    def __init__(self, page: int = Query(1, ge=1, le=MAX_PAGE),
                 size: int = Query(50, ge=1, le=100),
                 reverse: bool = Query(False)) -> None:
        self.page, self.size, self.reverse = page, size, reverse


async def paginate(paging: Paging, fetch: Callable[[int, str], Awaitable[Page[T]]],
                   shape: Callable[[T], Json]) -> Json:
    """Honcho's `{items, total, page, size, pages}` (domain/paging.py: a COUNT and one page,
    not a walk of the list); `pages` is 0 for an empty list, a page past the end is empty."""
    items, total = await numbered_page(paging.page, paging.size, fetch)
    return {"items": [shape(i) for i in items], "total": total, "page": paging.page,
            "size": paging.size, "pages": math.ceil(total / paging.size)}


# Honcho's spellings of filterable fields that the filter language names otherwise.
SESSION_FIELDS = {"is_active": "active"}
CONCLUSION_FIELDS = {"observer": "observer_id", "observed": "observed_id"}


def renamed(filters: Json | None, names: dict[str, str]) -> Json | None:
    """`filters` with Honcho's top-level field names as the filter language spells them."""
    if not filters:
        return None
    out = dict(filters)
    for honcho, ours in names.items():
        if honcho in out and ours not in out:
            out[ours] = out.pop(honcho)
    return out


async def or_empty(read: Awaitable[T], missing: str, empty: T) -> T:
    """Honcho answers reads under a missing parent (the messages or summaries of a session
    that does not exist) with 200 and nothing, where the domain says NOT_FOUND (`missing` is
    its reason): `empty` then."""
    try:
        return await read
    except HonchoError as exc:
        if exc.reason != missing:
            raise
        return empty


def named(value: str | list[str] | None) -> list[str]:
    """The ids a `scope` option names, unchecked: for the token check, which comes first."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def named_sessions(filters: Json | None) -> list[str]:
    """The sessions an allowlist names, unchecked (the token check comes first)."""
    value = (filters or {}).get("session_id")
    if isinstance(value, dict):
        value = value.get("in")
    ids = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [i for i in ids if isinstance(i, str)]


def scope_ids(c: Checker, field: str, value: str | list[str] | None) -> list[str]:
    """Honcho's `scope` option: one scope id or a list of them (1-100)."""
    if value is None:
        return []
    ids = [value] if isinstance(value, str) else value
    if not ids:
        c.fail(field, "must name at least one scope")
    if len(ids) > scopes.MAX_SCOPES_PER_READ:
        c.fail(field, f"names more than {scopes.MAX_SCOPES_PER_READ} scopes")
    for i, named in enumerate(ids):
        scope_id_of(c, field if isinstance(value, str) else f"{field}[{i}]", named)
    return ids


def scope_id_of(c: Checker, field: str, value: str) -> None:
    """A scope id: an id without Honcho's reserved prefix (which '.' keeps out already), at
    most as long as Honcho allows once it is prefixed."""
    scope_id(c, field, value)


def allowlist(c: Checker, filters: Json | None) -> list[str] | None:
    """Honcho's session allowlist on chat and representation: `filters` holds only
    `session_id`, as an id, a list of ids or `{"in": [ids]}` (at most 1000); anything else
    is refused rather than ignored (it would answer wider than asked)."""
    if filters is None:
        return None
    extra = sorted(set(filters) - {"session_id"})
    if extra or "session_id" not in filters:
        c.fail("filters", "only a session_id allowlist is accepted here")
        return None
    value = filters["session_id"]
    if isinstance(value, dict) and set(value) == {"in"}:
        value = value["in"]
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        c.fail("filters.session_id", "must be a session id, a list of them or {\"in\": [...]}")
        return None
    if not ids:
        c.fail("filters.session_id", "must name at least one session")
    if len(ids) > scopes.MAX_ALLOWLIST:
        c.fail("filters.session_id", f"names more than {scopes.MAX_ALLOWLIST} sessions")
    for i, session_id in enumerate(ids):
        c.id(f"filters.session_id[{i}]", session_id)
    return ids


def exclusive(c: Checker, **options: object) -> None:
    """At most one of the options is set (Honcho answers 422 otherwise)."""
    given = [name for name, value in options.items() if value]
    if len(given) > 1:
        c.fail(given[1], f"cannot be combined with {given[0]}")


def not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="Not Found")
