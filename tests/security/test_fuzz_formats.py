"""Structure-aware fuzzing of every internal format a caller can reach, beyond the field-level
fuzzing of test_fuzz.py: page tokens (mutated real ones, forged ones, compression bombs),
filters and metadata (non-finite numbers with any bit pattern, deep nesting), uploaded
JSON/text/PDF, response_format schemas, webhook URLs, ids and timestamps.

Properties, per case: never INTERNAL or UNKNOWN, no hang past the deadline, a refused call
changes no data (test_fuzz.Target.check), the server still SERVING afterwards; and over the
whole run, the process's peak memory (the server runs in it) grows by a bounded amount.

CI runs EXAMPLES (30) derandomized cases per format and RPC; `HONCHO_FUZZ_EXAMPLES=500`
explores fresh ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    dialectic_pb2,
    message_pb2,
    peer_pb2,
    search_pb2,
    session_pb2,
    webhook_pb2,
    workspace_pb2,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Stubs
from tests.pdfs import pdf_with_stream, text_page
from tests.security.conftest import RPCS
from tests.security.test_fuzz import (
    FUZZ_WS,
    SETTINGS,
    Target,
    json_values,
    set_up_world,
    weird_text,
)

MAX_PEAK_GROWTH_MB = 400


def _rss_mb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"{field} not in /proc/self/status")


class Memory:
    at_start = 0  # resident MB when the first case runs (after earlier tests, whatever they did)

# -- numbers, structs ------------------------------------------------------------------------

# Doubles from raw bits: every NaN payload and both infinities are reachable, not just the
# canonical NaN (which has zero bytes on the wire).
any_double = st.one_of(
    st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack("<d", bits.to_bytes(8, "little"))[0]),
    st.builds(lambda payload, sign: struct.unpack(
        "<d", (payload | 0x7FF0_0000_0000_0001 | (sign << 63)).to_bytes(8, "little"))[0],
        st.integers(0, 2**52 - 1), st.integers(0, 1)),
    st.sampled_from([float("inf"), float("-inf"), 0.0, 1e308]),
)


def _value(data: Any, depth: int = 0) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if isinstance(data, dict) and depth < 30:
        for key, item in data.items():
            value.struct_value.fields[str(key)].CopyFrom(_value(item, depth + 1))
    elif isinstance(data, list) and depth < 30:
        value.list_value.values.extend(_value(item, depth + 1) for item in data)
    elif isinstance(data, bool):
        value.bool_value = data
    elif isinstance(data, int | float):
        value.number_value = float(data) if abs(data) < 1e308 or isinstance(data, float) \
            else 1e308
    elif data is None:
        value.null_value = struct_pb2.NULL_VALUE
    else:
        value.string_value = str(data)
    return value


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    for key, item in data.items():
        out.fields[str(key)].CopyFrom(_value(item))
    return out


numbers_inside = st.recursive(
    st.one_of(any_double, st.integers(-(2**70), 2**70), weird_text, st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(
                                ["metadata", "peer_id", "gte", "in", "AND", "OR", "NOT",
                                 "created_at", "n", "x"]), inner, max_size=3)),
    max_leaves=12)
deep_dicts = st.integers(6, 30).map(lambda n: json.loads('{"a":' * n + "1" + "}" * n))
structs = st.one_of(st.dictionaries(st.sampled_from(["metadata", "peer_id", "n", "x", "AND"]),
                                    numbers_inside, max_size=3), deep_dicts).map(_struct)

# -- page tokens -----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Tokens:
    real: str = ""  # a genuine token of ListPeers, filled in by the fixture


def _flip(token: str, edits: list[tuple[int, int]]) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for pos, byte in edits:
        raw[pos % len(raw)] = byte
    return _b64(bytes(raw))


page_tokens = st.one_of(
    st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), min_size=1,
             max_size=4).map(lambda edits: _flip(Tokens.real, edits)),
    json_values.map(lambda v: _b64(json.dumps(["x", v]).encode())),
    json_values.map(lambda v: _b64(zlib.compress(json.dumps(["x", [v, v]]).encode()))),
    st.integers(1, 200_000).map(lambda n: _b64(zlib.compress(b"[" * n))),
    st.just(_b64(zlib.compress(b"0" * 5_000_000, 9))),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            max_size=6000),
    weird_text,
)

# -- uploads ---------------------------------------------------------------------------------

json_files = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(10, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.lists(st.sampled_from(['"\\ud800"', '"\\udfff"', '"\\ud83d\\ude00"', "1", "null"]),
             min_size=1, max_size=5).map(lambda xs: ("[" + ",".join(xs) + "]").encode()),
    st.binary(max_size=200),
)
pdf_files = st.one_of(
    st.text(max_size=60).map(lambda t: text_page(t.replace("(", "").replace(")", ""))),
    st.binary(max_size=400).map(lambda b: pdf_with_stream(b)),
    st.binary(max_size=400).map(lambda b: pdf_with_stream(b, compress=False)),
    st.integers(1, 40).map(lambda mb: pdf_with_stream(b" " * (mb * 1_000_000))),
    st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), min_size=1, max_size=6).map(
        lambda edits: bytes(_edit(bytearray(text_page("hello")), edits))),
)
text_files = st.one_of(st.binary(max_size=500), weird_text.map(lambda t: t.encode(
    "utf-8", "surrogatepass")))


def _edit(data: bytearray, edits: list[tuple[int, int]]) -> bytearray:
    for pos, byte in edits:
        data[pos % len(data)] = byte
    return data


# -- schemas, URLs, ids, times ---------------------------------------------------------------

schema_like = st.recursive(
    st.one_of(st.sampled_from(["object", "string", "strin", "integer", "array", "null"]),
              st.integers(-3, 3), st.booleans(), st.none(), weird_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["type", "properties", "required", "items", "enum",
                                         "minimum", "$ref", "$defs", "anyOf", "pattern",
                                         "additionalProperties", "$schema"]),
                        inner, max_size=4)),
    max_leaves=15).map(lambda v: v if isinstance(v, dict) else {"type": "object", "x": v})
urls = st.one_of(
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
              st.sampled_from(["http", "https", "ftp", "HTTP", "javascript", ""]),
              st.one_of(
                  st.ip_addresses(v=4).map(str),
                  st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
                  st.sampled_from(["[::1", "[64:ff9b::7f00:1]", "[2002:a00:1::]",
                                   "[::127.0.0.1]", "[::ffff:169.254.169.254]", "0x7f.1",
                                   "2130706433", "localhost", "a@b", "[fe80::1%25eth0]"]),
                  weird_text),
              st.sampled_from(["", ":80", ":99999", ":-1", ":abc", ":"]),
              st.sampled_from(["", "/", "/h?q=1", "#f", "/%00"])),
    weird_text)
times = st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
                  st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))


# -- the cases -------------------------------------------------------------------------------

def _upload(content_type: str, data: bytes) -> list[bytes]:
    header = message_pb2.UploadFileRequest(header=message_pb2.UploadFileHeader(
        workspace_id=FUZZ_WS, session_id="s1", peer_id="alice", filename="fuzz",
        content_type=content_type))
    step = 1 << 20
    return [header.SerializeToString()] + [
        message_pb2.UploadFileRequest(chunk=data[i:i + step]).SerializeToString()
        for i in range(0, max(len(data), 1), step)]


def _list_with_token(path: str, make: Callable[[str], Message]) -> tuple[str, Any]:
    return path, page_tokens.map(lambda t: make(t).SerializeToString())


CASES: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "page_token.peers": _list_with_token("/honcho.v1.PeerService/ListPeers", lambda t: (
        peer_pb2.ListPeersRequest(workspace_id=FUZZ_WS, page_token=t))),
    "page_token.messages": _list_with_token("/honcho.v1.MessageService/ListMessages",
                                            lambda t: message_pb2.ListMessagesRequest(
                                                workspace_id=FUZZ_WS, session_id="s1",
                                                page_token=t)),
    "page_token.sessions": _list_with_token("/honcho.v1.SessionService/ListSessions",
                                            lambda t: session_pb2.ListSessionsRequest(
                                                workspace_id=FUZZ_WS, page_token=t)),
    "page_token.conclusions": _list_with_token(
        "/honcho.v1.ConclusionService/ListConclusions",
        lambda t: conclusion_pb2.ListConclusionsRequest(workspace_id=FUZZ_WS, page_token=t)),
    "page_token.webhooks": _list_with_token(
        "/honcho.v1.WebhookService/ListWebhookEndpoints",
        lambda t: webhook_pb2.ListWebhookEndpointsRequest(workspace_id=FUZZ_WS, page_token=t)),
    "filters.peers": ("/honcho.v1.PeerService/ListPeers", structs.map(
        lambda f: peer_pb2.ListPeersRequest(workspace_id=FUZZ_WS, filters=f)
        .SerializeToString())),
    "filters.search": ("/honcho.v1.SearchService/SearchMessages", structs.map(
        lambda f: search_pb2.SearchMessagesRequest(workspace_id=FUZZ_WS, query="tea",
                                                   filters=f).SerializeToString())),
    "metadata.peer": ("/honcho.v1.PeerService/GetOrCreatePeer", structs.map(
        lambda m: peer_pb2.GetOrCreatePeerRequest(workspace_id=FUZZ_WS, peer_id="alice",
                                                  metadata=m).SerializeToString())),
    "metadata.message": ("/honcho.v1.MessageService/CreateMessages", structs.map(
        lambda m: message_pb2.CreateMessagesRequest(
            workspace_id=FUZZ_WS, session_id="s1", messages=[message_pb2.MessageInput(
                peer_id="alice", content="fuzz", metadata=m)]).SerializeToString())),
    "upload.json": ("/honcho.v1.MessageService/UploadFile",
                    json_files.map(lambda d: _upload("application/json", d))),
    "upload.text": ("/honcho.v1.MessageService/UploadFile",
                    text_files.map(lambda d: _upload("text/plain", d))),
    "upload.pdf": ("/honcho.v1.MessageService/UploadFile",
                   pdf_files.map(lambda d: _upload("application/pdf", d))),
    "response_format": ("/honcho.v1.DialecticService/Chat", schema_like.map(
        lambda s: dialectic_pb2.ChatRequest(query=dialectic_pb2.ChatQuery(
            workspace_id=FUZZ_WS, peer_id="alice", query="what tea?",
            reasoning_level=dialectic_pb2.REASONING_LEVEL_MINIMAL,
            response_format=_struct(s))).SerializeToString())),
    "url": ("/honcho.v1.WebhookService/CreateWebhookEndpoint", urls.map(
        lambda u: webhook_pb2.CreateWebhookEndpointRequest(workspace_id=FUZZ_WS, url=u)
        .SerializeToString())),
    "ids": ("/honcho.v1.PeerService/GetPeer", st.tuples(weird_text, weird_text).map(
        lambda ids: peer_pb2.GetPeerRequest(workspace_id=ids[0], peer_id=ids[1])
        .SerializeToString())),
    "timestamps": ("/honcho.v1.MessageService/CreateMessages", times.map(
        lambda t: message_pb2.CreateMessagesRequest(
            workspace_id=FUZZ_WS, session_id="s1", messages=[message_pb2.MessageInput(
                peer_id="alice", content="when", create_time=t)]).SerializeToString())),
    "workspace.configuration": ("/honcho.v1.WorkspaceService/GetOrCreateWorkspace",
                                st.tuples(st.integers(-(2**31), 2**31 - 1),
                                          st.integers(-(2**31), 2**31 - 1)).map(
        lambda n: workspace_pb2.GetOrCreateWorkspaceRequest(
            workspace_id=FUZZ_WS).SerializeToString() if n[0] == 0 else _config_request(*n))),
}


def _config_request(short: int, long: int) -> bytes:
    request = workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=FUZZ_WS)
    request.configuration.summary.messages_per_short_summary = short
    request.configuration.summary.messages_per_long_summary = long
    return request.SerializeToString()


@pytest.fixture(scope="module")
async def format_target(server: Any, pg_dsn: str, stubs: Stubs) -> Any:
    await set_up_world(stubs)
    for n in range(3):
        await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(
            workspace_id=FUZZ_WS, peer_id=f"token-peer-{n}"))
    page = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(workspace_id=FUZZ_WS,
                                                                 page_size=1))
    Tokens.real = page.next_page_token
    assert Tokens.real
    target = await asyncio.to_thread(Target, f"127.0.0.1:{server.port}", pg_dsn)
    # Reset the peak-RSS mark, so the memory check sees only what these cases did.
    await asyncio.to_thread(Path("/proc/self/clear_refs").write_text, "5")
    Memory.at_start = _rss_mb("VmRSS")
    yield target
    await asyncio.to_thread(target.close)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_fuzz_internal_formats(case: str, format_target: Target) -> None:
    path, strategy = CASES[case]
    rpc = RPCS[path]

    @SETTINGS
    @given(strategy)
    def run(payload: bytes | list[bytes]) -> None:
        format_target.check(rpc, payload)

    await asyncio.to_thread(run)
    await asyncio.to_thread(format_target.assert_serving)


def test_peak_memory_stayed_bounded(format_target: Target) -> None:
    """Runs after the cases above (same module, file order): the zlib and PDF bombs, deep
    JSON and huge tokens did not balloon the server's (this process's) peak memory."""
    peak = _rss_mb("VmHWM")
    assert Memory.at_start and peak - Memory.at_start < MAX_PEAK_GROWTH_MB, (
        peak, Memory.at_start)
