"""Non-finite numbers are refused wherever a Struct or Value enters, whatever their bits: a
NaN can be spelt with no zero byte at all, which an earlier wire check relied on."""

from __future__ import annotations

import struct

import grpc
from google.protobuf import struct_pb2
from honcho_grpc_proto.v1 import message_pb2, peer_pb2, search_pb2, workspace_pb2

from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT
# A quiet NaN whose payload bytes are all 0x01, and the same with the sign bit.
NAN_NO_ZERO = struct.unpack("<d", bytes([1, 1, 1, 1, 1, 1, 0xF8, 0x7F]))[0]
NEG_NAN_NO_ZERO = struct.unpack("<d", bytes([1, 2, 3, 4, 5, 6, 0xF9, 0xFF]))[0]


def _struct(value: float, key: str = "n") -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.fields[key].number_value = value
    return out


def test_the_nan_really_has_no_zero_byte() -> None:
    wire = search_pb2.SearchMessagesRequest(workspace_id="w", query="q",
                                            filters=_struct(NAN_NO_ZERO)).SerializeToString()
    assert b"\x00" not in wire


async def test_nan_in_filters_and_metadata_is_invalid_argument(stubs: Stubs, ws: str) -> None:
    for nan in (NAN_NO_ZERO, NEG_NAN_NO_ZERO):
        await fails(stubs.search.SearchMessages(search_pb2.SearchMessagesRequest(
            workspace_id=ws, query="hello", filters=_struct(nan))), INVALID,
            field="filters.n")
        await fails(stubs.peers.ListPeers(peer_pb2.ListPeersRequest(
            workspace_id=ws, filters=_struct(nan, "metadata"))), INVALID)
        await fails(stubs.workspaces.GetOrCreateWorkspace(
            workspace_pb2.GetOrCreateWorkspaceRequest(workspace_id=ws,
                                                      metadata=_struct(nan))), INVALID)
        await fails(stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s", messages=[message_pb2.MessageInput(
                peer_id="p", content="hi", metadata=_struct(nan))])), INVALID)
    # Nothing was written by the refused calls.
    await fails(stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id=ws)), grpc.StatusCode.NOT_FOUND)
