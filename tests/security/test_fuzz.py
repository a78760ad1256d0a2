"""Property-based fuzzing of every RPC against the running (auth-off) test server, plus the
token check of the auth server.

For each RPC, hypothesis generates requests from the proto descriptors (weird unicode, huge
strings and integers, NaN and infinities, deeply nested Structs, unknown enum values,
out-of-range timestamps, oversized batches), with ids drawn mostly from a dedicated world
so that calls reach the database. Then raw bytes (random, or a valid request with bytes
flipped) go on the wire for the same method. Properties:

- the status is never INTERNAL or UNKNOWN (nor a hang: DEADLINE_EXCEEDED);
- a call that is refused changes no data: the rows of the fuzz workspaces (and the number
  of workspaces) are the same before and after;
- the server is still SERVING afterwards.

Bounded for CI: 30 derandomized examples per RPC and kind. A longer run with fresh examples,
printing which statuses the examples reached per RPC:
`HONCHO_FUZZ_EXAMPLES=1000 HONCHO_FUZZ_STATS=1 .venv/bin/pytest -s tests/security/test_fuzz.py`.
"""

from __future__ import annotations

import asyncio
import os
import string
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import psycopg
import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    message_pb2,
    resources_pb2,
    session_pb2,
    webhook_pb2,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honcho_grpc.server.app import Running
from honcho_grpc.server.validate import ID_RE
from tests.conftest import Stubs
from tests.security.conftest import RPCS, SECRET, Rpc, bearer

EXAMPLES = int(os.environ.get("HONCHO_FUZZ_EXAMPLES", "30"))
# The bounded CI run is derandomized (the same examples every time, so CI cannot flake on a
# lucky draw); a run with HONCHO_FUZZ_EXAMPLES set explores fresh random examples.
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    derandomize="HONCHO_FUZZ_EXAMPLES" not in os.environ,
                    suppress_health_check=list(HealthCheck))
FUZZ_WS = f"fuzz-{uuid.uuid4().hex[:8]}"
FUZZ_WS2 = f"fuzz-{uuid.uuid4().hex[:8]}"
ACCEPTABLE = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.ABORTED,
}
WATCH = "/honcho.v1.EventService/WatchEvents"

# --- strategies from descriptors ------------------------------------------------------------

weird_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(
        ["\x00", "\n", "\u202e", "\u200b", "\ufeff", "é", "e\u0301", "🦜", "\U0010ffff",
         "'", '"', ";", "--", "%", "_", "*", "\\", "$1", "{", "}", "a", "-"]),
        max_size=30).map("".join),
    st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(0, 30_000)),
    st.sampled_from(["", " ", "null", "NaN", "DROP TABLE workspaces;", "' OR 1=1 --",
                     "a" * 512, "a" * 513, "ws\n", "../../etc/passwd"]),
)
valid_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z")
plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any],
           weight: int = 3) -> st.SearchStrategy[Any]:
    """`usual` about `weight` times as often as `odd` (so that calls get past validation)."""
    return st.one_of(*([usual] * weight), odd)


invalid_ws = weird_text.filter(lambda s: not ID_RE.fullmatch(s))
int32 = mostly(st.integers(0, 120), st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.sampled_from([-1, 101, 2**31 - 1, -(2**31)])))
int64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1]))
doubles = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1.0, 2.0, 1e308,
                                                  float("nan"), float("inf")]))
json_scalars = st.one_of(st.none(), st.booleans(), weird_text, st.floats(),
                         st.integers(-(2**70), 2**70))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(weird_text, inner, max_size=4)),
    max_leaves=20)
deep = st.integers(1, 12).map(lambda n: _nest(n))
filter_like = st.dictionaries(
    st.sampled_from(["AND", "OR", "NOT", "peer_id", "session_id", "metadata", "created_at",
                     "token_count", "content", "level", "observer_id", "x"]),
    st.one_of(json_values, st.dictionaries(
        st.sampled_from(["gte", "lte", "gt", "lt", "ne", "in", "contains", "icontains", "eq"]),
        json_values, max_size=2)), max_size=3)


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for i in range(depth):
        value = {f"k{i}": value}
    return value


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    try:
        out.update(data)
    except (ValueError, OverflowError, TypeError):
        out.update({"fallback": 1})
    return out


small_dicts = st.dictionaries(st.sampled_from(["a", "b", "topic", "n"]),
                              st.one_of(st.integers(-5, 5), plain_text, st.booleans()),
                              max_size=3)
structs = mostly(st.one_of(small_dicts, filter_like), st.one_of(
    json_values.filter(lambda v: isinstance(v, dict)), deep,
    st.dictionaries(weird_text, st.integers(), min_size=95, max_size=110))).map(_struct)
timestamps = st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n), int64, int32)
masks = st.lists(st.one_of(st.sampled_from(["metadata", "configuration", "*", "id", "content",
                                            "metadata.x", "workspace_id"]), weird_text),
                 max_size=3).map(lambda paths: field_mask_pb2.FieldMask(paths=paths))
enums = st.one_of(st.integers(0, 6), int32)


class World:
    """Ids that exist in the fuzz workspaces (filled in by the fixture)."""

    ids: tuple[str, ...] = ("alice", "bob", "s1", "s2")


def _ids() -> st.SearchStrategy[str]:
    return mostly(st.sampled_from(World.ids), st.one_of(valid_ids, weird_text), 4)


WORKSPACE_FIELDS = {"workspace_id"}
ID_FIELDS = {"peer_id", "session_id", "message_id", "target_id", "observer_id", "observed_id",
             "sender_id", "conclusion_id", "endpoint_id", "new_session_id", "peer_target",
             "peer_perspective", "peer_ids"}


def _string(field: FieldDescriptor, parent: Descriptor) -> st.SearchStrategy[str]:
    name = field.name
    workspace_like = name in WORKSPACE_FIELDS or (
        name == "id" and parent.full_name == "honcho.v1.Workspace")
    if workspace_like:
        # Only the fuzz workspaces are valid workspace ids: nothing can land elsewhere.
        return mostly(st.sampled_from([FUZZ_WS, FUZZ_WS, FUZZ_WS, FUZZ_WS2]), invalid_ws, 5)
    if name in ID_FIELDS or name == "id" or name.endswith("_id"):
        return _ids()
    if name == "request_id":
        return mostly(st.uuids().map(str), weird_text)
    if name == "content_type":
        return mostly(st.sampled_from(["text/plain", "application/json", "application/pdf",
                                       "text/markdown", "image/png"]), weird_text)
    if name == "url":
        return mostly(st.sampled_from(["https://93.184.216.34/h", "http://127.0.0.1/x",
                                       "http://[::1]/", "ftp://x", "https://exa mple/"]),
                      weird_text)
    return mostly(plain_text, weird_text, 2)


def _scalar(field: FieldDescriptor, parent: Descriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _string(field, parent)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from([
            b"plain text\n", b'{"a": [1, 2, {"b": "c"}]}', b"%PDF-1.4 broken", b"\xff\xfe\x00"]))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return doubles if t == FieldDescriptor.TYPE_DOUBLE else st.floats(width=32)
    if t == FieldDescriptor.TYPE_ENUM:
        return enums
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
             FieldDescriptor.TYPE_SFIXED64):
        return int64
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    return int32


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Message]:
    descriptor = cls.DESCRIPTOR
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return structs
    if name == "google.protobuf.Timestamp":
        return timestamps
    if name == "google.protobuf.FieldMask":
        return masks
    # Names and texts are always set (their strategies include the empty string); numbers,
    # flags, lists and nested messages only sometimes.
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        always = field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated
        always = always or (field.message_type is not None and not field.is_repeated
                            and field.name in ("query", "peer", "session", "message",
                                               "workspace", "header"))
        (required if always else optional)[field.name] = _field_strategy(cls, field, depth)
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: _build(cls, kw))


def _build(cls: type[Message], kwargs: dict[str, Any]) -> Message:
    message = cls()
    for key, value in kwargs.items():
        field = cls.DESCRIPTOR.fields_by_name[key]
        try:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(message, key).update(value)
            elif field.is_repeated:
                getattr(message, key).extend(value)
            elif field.message_type is not None:
                getattr(message, key).CopyFrom(value)
            else:
                setattr(message, key, value)
        except (ValueError, TypeError, OverflowError):
            continue  # a value this runtime cannot even hold (the wire fuzz covers the rest)
    return message


def _field_strategy(cls: type[Message], field: FieldDescriptor,
                    depth: int) -> st.SearchStrategy[Any]:
    parent = cls.DESCRIPTOR
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_fd = field.message_type.fields_by_name["key"]
        value_fd = field.message_type.fields_by_name["value"]
        keys = _ids() if key_fd.type == FieldDescriptor.TYPE_STRING else _scalar(key_fd, parent)
        values_ = (_sub(value_fd, depth) if value_fd.message_type is not None
                   else _scalar(value_fd, parent))
        return st.dictionaries(keys, values_, max_size=4)
    single = (_sub(field, depth) if field.message_type is not None
              else _scalar(field, parent))
    if field.is_repeated:
        # Small lists, or batches at and just over the limits (one element repeated: cheap).
        many = st.builds(lambda item, n: [item] * n, single, st.sampled_from([100, 101, 1001]))
        return st.one_of(st.lists(single, max_size=3), many)
    return single


def _sub(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(field.message_type)
    if depth > 4:
        return st.just(cls())
    return message_strategy(cls, depth + 1)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid` with a few bytes overwritten, inserted or cut."""
    def mutate(edits: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(valid)
        for kind, pos, byte in edits:
            if not data:
                data.append(byte)
                continue
            pos %= len(data)
            if kind == 0:
                data[pos] = byte
            elif kind == 1:
                data.insert(pos, byte)
            else:
                del data[pos:]
        return bytes(data)

    return st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)),
                    min_size=1, max_size=6).map(mutate)


# --- calling and checking -------------------------------------------------------------------

def _fingerprint_sql(conn: psycopg.Connection[Any]) -> str:
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'workspace_id' "
        "AND table_schema = current_schema() ORDER BY table_name").fetchall()]
    parts = [f"SELECT '{t}', count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY "
             f"x::text)), '') FROM \"{t}\" x WHERE workspace_id = ANY(%(ws)s)" for t in tables]
    parts.append("SELECT 'workspaces_total', count(*), '' FROM workspaces")
    return " UNION ALL ".join(parts)


class Target:
    """A sync view of the running server: raw calls, health, and the data fingerprint."""

    def __init__(self, address: str, dsn: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.db = psycopg.connect(dsn, autocommit=True)
        self.sql = _fingerprint_sql(self.db)
        self.codes: dict[str, Counter[str]] = defaultdict(Counter)

    def close(self) -> None:
        self.channel.close()
        self.db.close()

    def fingerprint(self) -> list[tuple[Any, ...]]:
        return self.db.execute(self.sql, {"ws": [FUZZ_WS, FUZZ_WS2]}).fetchall()

    def call(self, rpc: Rpc, payload: bytes | list[bytes],
             metadata: tuple[tuple[str, str], ...] = ()) -> tuple[grpc.StatusCode, Any]:
        """(code, the failed call or None)."""
        identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
        kwargs: dict[str, Any] = {"request_serializer": identity,
                                  "response_deserializer": identity}
        try:
            if rpc.client_streaming:
                parts = payload if isinstance(payload, list) else [payload]
                self.channel.stream_unary(rpc.name, **kwargs)(
                    iter(parts), timeout=30, metadata=metadata)
                return grpc.StatusCode.OK, None
            assert isinstance(payload, bytes)
            if rpc.server_streaming:
                call = self.channel.unary_stream(rpc.name, **kwargs)(
                    payload, timeout=30, metadata=metadata)
                if rpc.name == WATCH:
                    call.initial_metadata()
                    if call.is_active():
                        call.cancel()
                        return grpc.StatusCode.OK, None
                for _ in call:
                    pass
                return call.code(), call
            self.channel.unary_unary(rpc.name, **kwargs)(payload, timeout=30,
                                                         metadata=metadata)
            return grpc.StatusCode.OK, None
        except grpc.RpcError as err:
            return err.code(), err  # type: ignore[attr-defined]

    def check(self, rpc: Rpc, payload: bytes | list[bytes]) -> grpc.StatusCode:
        before = self.fingerprint()
        code, failed = self.call(rpc, payload)
        self.codes[rpc.short][code.name] += 1
        shown = payload if len(str(payload)) < 2000 else "(large)"
        assert code in ACCEPTABLE, (rpc.short, code, shown)
        if code != grpc.StatusCode.OK:
            check_status(failed, rpc.short, shown)
            assert self.fingerprint() == before, (rpc.short, code, "a refused call wrote")
        return code

    def assert_serving(self) -> None:
        status = self.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING


def check_status(failed: Any, name: str, shown: Any) -> None:
    """A refusal carries a rich status (one ErrorInfo), unless the transport itself refused
    an oversized request. An error too large for the client's metadata limit would arrive as
    a bare RESOURCE_EXHAUSTED ("Stream removed"): that is a failure too."""
    details = failed.details() or ""
    if failed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        return
    if (failed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "metadata size" in details
            and (":path:" in details or "value length" in details)):
        # The transport refused the caller's oversized request headers (e.g. a huge token).
        # Statuses we send are bounded far below the limit (server/errors.py).
        return
    assert "metadata size" not in details, (name, "error too large for the client", shown)
    status = rpc_status.from_call(failed)
    assert status is not None, (name, failed.code(), details, shown)
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1, (name, details)


def _serialized(message: Message | list[Message]) -> bytes | list[bytes]:
    if isinstance(message, list):
        return [m.SerializeToString() for m in message]
    return message.SerializeToString()


def request_strategy(rpc: Rpc) -> st.SearchStrategy[Message | list[Message]]:
    single = message_strategy(rpc.request)
    if not rpc.client_streaming:
        return single
    if rpc.name.endswith("/UploadFile"):
        header = message_strategy(message_pb2.UploadFileHeader).map(
            lambda h: message_pb2.UploadFileRequest(header=h))
        chunks = st.binary(max_size=256).map(lambda b: message_pb2.UploadFileRequest(chunk=b))
        return st.one_of(st.tuples(header, st.lists(chunks, max_size=3)).map(
            lambda hc: [hc[0], *hc[1]]), st.lists(single, max_size=4))
    return st.lists(single, max_size=3)


# --- the world ------------------------------------------------------------------------------


async def set_up_world(stubs: Stubs) -> tuple[str, ...]:
    """(Re)create the fuzz workspaces: an earlier RPC's examples may have deleted them."""
    ids = ["alice", "bob", "s1", "s2"]
    for ws in (FUZZ_WS, FUZZ_WS2):
        for sid in ("s1", "s2"):
            await stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
                workspace_id=ws, session_id=sid,
                peers={"alice": resources_pb2.SessionPeerConfiguration(observe_others=True),
                       "bob": resources_pb2.SessionPeerConfiguration()}))
            done = await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=sid, messages=[
                    message_pb2.MessageInput(peer_id="alice", content="I like green tea"),
                    message_pb2.MessageInput(peer_id="bob", content="I live in Lyon")]))
            ids += [m.id for m in done.messages]
        made = await stubs.conclusions.CreateConclusions(conclusion_pb2.CreateConclusionsRequest(
            workspace_id=ws, conclusions=[conclusion_pb2.ConclusionInput(
                observer_id="alice", observed_id="bob", content="bob lives in Lyon")]))
        ids += [c.id for c in made.conclusions]
    from honcho_grpc_proto.v1 import webhook_pb2_grpc

    hooks = webhook_pb2_grpc.WebhookServiceStub(stubs.channel)
    endpoint = await hooks.CreateWebhookEndpoint(webhook_pb2.CreateWebhookEndpointRequest(
        workspace_id=FUZZ_WS, url="https://93.184.216.34/hook"))
    ids.append(endpoint.endpoint.id)
    World.ids = tuple(ids)
    return World.ids


@pytest.fixture
async def fuzz_world(stubs: Stubs) -> tuple[str, ...]:
    return await set_up_world(stubs)


@pytest.fixture(scope="module")
async def target(server: Running, pg_dsn: str) -> Any:
    t = await asyncio.to_thread(Target, f"127.0.0.1:{server.port}", pg_dsn)
    yield t
    await asyncio.to_thread(t.close)
    if os.environ.get("HONCHO_FUZZ_STATS"):  # which statuses the examples reached, per RPC
        for name, codes in sorted(t.codes.items()):
            print(f"{name}: {dict(codes.most_common())}")


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RPCS))
async def test_fuzz_requests(name: str, target: Target, fuzz_world: tuple[str, ...]) -> None:
    rpc = RPCS[name]

    @SETTINGS
    @given(request_strategy(rpc))
    def run(request: Message | list[Message]) -> None:
        target.check(rpc, _serialized(request))

    await asyncio.to_thread(run)
    await asyncio.to_thread(target.assert_serving)


@pytest.mark.parametrize("name", sorted(RPCS))
async def test_fuzz_wire_bytes(name: str, target: Target,
                               fuzz_world: tuple[str, ...]) -> None:
    rpc = RPCS[name]
    valid = rpc.request(**_minimal(rpc)).SerializeToString()
    raw = st.one_of(st.binary(max_size=512), mutated(valid))
    payloads = st.lists(raw, min_size=1, max_size=3) if rpc.client_streaming else raw

    @SETTINGS
    @given(payloads)
    def run(payload: bytes | list[bytes]) -> None:
        target.check(rpc, payload)

    await asyncio.to_thread(run)
    await asyncio.to_thread(target.assert_serving)


def _minimal(rpc: Rpc) -> dict[str, Any]:
    """Field values naming the fuzz world, for the byte mutations to start from."""
    fields = rpc.request.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {}
    for name, value in (("workspace_id", FUZZ_WS), ("session_id", "s1"), ("peer_id", "alice"),
                        ("observer_id", "alice"), ("observed_id", "bob"), ("query", "tea")):
        if name in fields and fields[name].type == FieldDescriptor.TYPE_STRING:
            out[name] = value
    return out


printable = st.text(alphabet=string.ascii_letters + string.digits + "-_.=+/ ", max_size=300)
claims = st.dictionaries(
    st.sampled_from(["ad", "w", "p", "s", "exp", "iat", "nbf", "aud", "iss", "sub", "jti"]),
    st.one_of(json_scalars.filter(lambda v: not isinstance(v, float) or v == v),
              st.sampled_from([FUZZ_WS, "alice", "s1", True, 0, ""]),
              st.lists(st.integers(), max_size=2)),
    max_size=6)


async def test_fuzz_tokens(auth_server: Running, pg_dsn: str,
                           fuzz_world: tuple[str, ...]) -> None:
    """Random authorization values and randomly-claimed tokens signed with the real secret:
    never INTERNAL or UNKNOWN; garbage is UNAUTHENTICATED."""
    rpc = RPCS["/honcho.v1.SessionService/GetSession"]
    body = session_pb2.GetSessionRequest(workspace_id=FUZZ_WS, session_id="s1")
    target = await asyncio.to_thread(Target, f"127.0.0.1:{auth_server.port}", pg_dsn)

    @SETTINGS
    @given(st.one_of(printable.map(lambda t: ("garbage", t)),
                     claims.map(lambda c: ("signed", c))))
    def run(case: tuple[str, Any]) -> None:
        kind, value = case
        if kind == "garbage":
            metadata = (("authorization", value),)
            code, _ = target.call(rpc, body.SerializeToString(), metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (value, code)
            return
        try:
            signed = jwt.encode(value, SECRET, algorithm="HS256")
        except (TypeError, ValueError, OverflowError):
            return
        code, failed = target.call(rpc, body.SerializeToString(), bearer(signed))
        assert code in ACCEPTABLE, (value, code)
        if failed is not None:
            check_status(failed, "GetSession", value)

    try:
        await asyncio.to_thread(run)
        await asyncio.to_thread(target.assert_serving)
    finally:
        await asyncio.to_thread(target.close)
