"""Page tokens are opaque and tamper-evident: whatever a caller makes of one is refused with
INVALID_ARGUMENT (PAGE_TOKEN_INVALID) before anything in it is trusted, and fast."""

from __future__ import annotations

import base64
import json
import time
import zlib

import grpc
import pytest
from honcho_grpc_proto.v1 import message_pb2, peer_pb2

from honcho_grpc.errors import InvalidArgument
from honcho_grpc.store import pages
from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _deep(levels: int) -> bytes:
    return ("[" * levels + "]" * levels).encode()


# What a caller can make of a token: a re-encoded position of the wrong type or shape, the
# old unsigned compressed form, a decompression bomb, deep nesting, or plain garbage.
FORGED = [
    _b64(zlib.compress(json.dumps(["x", ["not-a-time", "p1"]]).encode())),
    _b64(zlib.compress(json.dumps(["x", [{"t": 5}, {"a": 1}]]).encode())),
    _b64(zlib.compress(json.dumps(["x", [2**70, [[1]]]]).encode())),
    _b64(zlib.compress(b"0" * 8_000_000, 9)),
    _b64(zlib.compress(_deep(100_000))),
    _b64(b"\x00" * 16 + json.dumps(["x", [1, 2]]).encode()),
    "A" * 100_000,
    "%%%",
    "",
]


@pytest.mark.parametrize("token", FORGED[:-1])
async def test_forged_tokens_are_refused(stubs: Stubs, ws: str, token: str) -> None:
    await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(workspace_id=ws,
                                                                      peer_id="p1"))
    started = time.perf_counter()
    await fails(stubs.peers.ListPeers(peer_pb2.ListPeersRequest(workspace_id=ws,
                                                                page_token=token)),
                INVALID, reason="PAGE_TOKEN_INVALID", field="page_token")
    await fails(stubs.messages.ListMessages(message_pb2.ListMessagesRequest(
        workspace_id=ws, session_id="s", page_token=token)),
        INVALID, reason="PAGE_TOKEN_INVALID", field="page_token")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("position", [
    [{"t": "not-a-time"}, "p1"], [{"t": 5}, "p1"], [2**64, "p1"], [True, "p1"], [[["x"]], "p1"],
    [{"t": "2024-01-01T00:00:00+00:00", "extra": 1}, "p1"], [None, "p1"], ["x" * 5000, "p"],
])
def test_signed_tokens_of_the_wrong_shape_are_refused(position: list[object]) -> None:
    """Even a correctly signed body is checked for shape (a key shared across versions)."""
    body = json.dumps(["b", position]).encode()
    token = _b64(pages._sign(body) + body)
    with pytest.raises(InvalidArgument) as caught:
        pages.decode_token(token, "b")
    assert caught.value.reason == "PAGE_TOKEN_INVALID"


def test_a_token_altered_after_signing_is_refused() -> None:
    token = pages.encode_token(["2024-01-01", "p1"], "b")
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-3] ^= 1
    with pytest.raises(InvalidArgument):
        pages.decode_token(_b64(bytes(raw)), "b")
    assert pages.decode_token(token, "b") == ["2024-01-01", "p1"]


async def test_tokens_walk_pages_and_survive_a_key_reload(stubs: Stubs, ws: str,
                                                          db: object) -> None:
    for i in range(5):
        await stubs.peers.GetOrCreatePeer(peer_pb2.GetOrCreatePeerRequest(
            workspace_id=ws, peer_id=f"p{i}"))
    first = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(workspace_id=ws, page_size=2))
    # Another server of the deployment loads the same key from the database.
    await pages.load_token_key(db.pool)  # type: ignore[attr-defined]
    second = await stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
        workspace_id=ws, page_size=2, page_token=first.next_page_token))
    assert [p.id for p in [*first.peers, *second.peers]] == ["p0", "p1", "p2", "p3"]
