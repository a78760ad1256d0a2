"""Configuration outside the ranges the proto documents is refused on every RPC that carries
it, naming the field, and nothing is stored."""

from __future__ import annotations

import grpc
import pytest
from honcho_grpc_proto.v1 import (
    message_pb2,
    resources_pb2,
    session_pb2,
    workspace_pb2,
)

from honcho_grpc.db.pool import Database
from tests.api.test_messages import count
from tests.conftest import Stubs
from tests.helpers import fails

INVALID = grpc.StatusCode.INVALID_ARGUMENT

BAD = [
    ({"summary": {"messages_per_short_summary": 5}}, "summary.messages_per_short_summary"),
    ({"summary": {"messages_per_short_summary": -20}}, "summary.messages_per_short_summary"),
    ({"summary": {"messages_per_long_summary": 0}}, "summary.messages_per_long_summary"),
    ({"summary": {"messages_per_short_summary": 30, "messages_per_long_summary": 30}},
     "summary.messages_per_long_summary"),
    ({"reasoning": {"custom_instructions": "x" * 1_000_000}},
     "reasoning.custom_instructions"),
]


def config(data: dict[str, dict[str, object]]) -> resources_pb2.Configuration:
    out = resources_pb2.Configuration()
    for section, values in data.items():
        getattr(out, section).SetInParent()
        for key, value in values.items():
            setattr(getattr(out, section), key, value)
    return out


@pytest.mark.parametrize(("data", "field"), BAD)
async def test_out_of_range_configuration_is_refused(stubs: Stubs, db: Database, ws: str,
                                                     data: dict[str, dict[str, object]],
                                                     field: str) -> None:
    cfg = config(data)
    await fails(stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, configuration=cfg)), INVALID, field=f"configuration.{field}")
    await fails(stubs.sessions.GetOrCreateSession(session_pb2.GetOrCreateSessionRequest(
        workspace_id=ws, session_id="s", configuration=cfg)), INVALID,
        field=f"configuration.{field}")
    await stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws))
    await fails(stubs.workspaces.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(
        workspace=resources_pb2.Workspace(id=ws, configuration=cfg))), INVALID,
        field=f"workspace.configuration.{field}")
    if field.startswith("reasoning"):
        message_cfg = resources_pb2.MessageConfiguration()
        message_cfg.reasoning.CopyFrom(cfg.reasoning)
        await fails(stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
            workspace_id=ws, session_id="s", messages=[message_pb2.MessageInput(
                peer_id="p", content="hi", configuration=message_cfg)])), INVALID,
            field=f"messages[0].configuration.{field}")
    got = await stubs.workspaces.GetWorkspace(workspace_pb2.GetWorkspaceRequest(
        workspace_id=ws))
    assert not got.workspace.HasField("configuration") or \
        got.workspace.configuration == resources_pb2.Configuration()
    assert await count(db, "messages", ws) == 0


async def test_in_range_configuration_is_kept(stubs: Stubs, ws: str) -> None:
    cfg = config({"summary": {"messages_per_short_summary": 10,
                              "messages_per_long_summary": 20},
                  "reasoning": {"custom_instructions": "Be brief."}})
    r = await stubs.workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=ws, configuration=cfg))
    assert r.workspace.configuration.summary.messages_per_long_summary == 20
