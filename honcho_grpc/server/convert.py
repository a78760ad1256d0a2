"""Rows to protobuf messages (and the few dict conversions going the other way)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message as ProtoMessage
from honcho_grpc_proto.v1 import resources_pb2 as pb

M = TypeVar("M", bound=ProtoMessage)

LEVELS = {
    "explicit": pb.CONCLUSION_LEVEL_EXPLICIT, "deductive": pb.CONCLUSION_LEVEL_DEDUCTIVE,
    "inductive": pb.CONCLUSION_LEVEL_INDUCTIVE, "contradiction": pb.CONCLUSION_LEVEL_CONTRADICTION,
}
SUMMARY_TYPES = {"short": pb.SUMMARY_TYPE_SHORT, "long": pb.SUMMARY_TYPE_LONG}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # Timestamp.FromDatetime goes through timetuple() and calendar.timegm: a tenth of a
    # ListMessages page's conversion time. Subtracting the epoch is exact and much cheaper.
    if value is None:
        return None
    delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - EPOCH
    return timestamp_pb2.Timestamp(seconds=delta.days * 86400 + delta.seconds,
                                   nanos=delta.microseconds * 1000)


def struct(data: dict[str, Any] | None) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    if data:
        out.update(data)
    return out


def to_dict(message: ProtoMessage | None) -> dict[str, Any]:
    """Proto -> JSON-ready dict with proto field names and unset fields left out."""
    if message is None or not message.ByteSize():  # unset: skip the slow JSON printer
        return {}
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_dict(data: dict[str, Any] | None, cls: type[M]) -> M:
    return json_format.ParseDict(data or {}, cls(), ignore_unknown_fields=True)


def workspace(row: asyncpg.Record) -> pb.Workspace:
    return pb.Workspace(id=row["workspace_id"], metadata=struct(row["metadata"]),
                        configuration=from_dict(row["configuration"], pb.Configuration),
                        create_time=ts(row["created_at"]))


def peer(row: asyncpg.Record) -> pb.Peer:
    return pb.Peer(id=row["peer_id"], workspace_id=row["workspace_id"],
                   metadata=struct(row["metadata"]),
                   configuration=from_dict(row["configuration"], pb.PeerConfiguration),
                   create_time=ts(row["created_at"]))


def session(row: asyncpg.Record) -> pb.Session:
    return pb.Session(id=row["session_id"], workspace_id=row["workspace_id"],
                      active=row["active"], metadata=struct(row["metadata"]),
                      configuration=from_dict(row["configuration"], pb.Configuration),
                      create_time=ts(row["created_at"]))


def session_peer(row: asyncpg.Record) -> pb.SessionPeer:
    config = pb.SessionPeerConfiguration()
    if row["observe_me"] is not None:
        config.observe_me = row["observe_me"]
    if row["observe_others"] is not None:
        config.observe_others = row["observe_others"]
    return pb.SessionPeer(peer_id=row["peer_id"], configuration=config,
                          join_time=ts(row["joined_at"]), leave_time=ts(row["left_at"]))


def message(row: asyncpg.Record) -> pb.Message:
    return pb.Message(id=row["message_id"], workspace_id=row["workspace_id"],
                      session_id=row["session_id"], peer_id=row["peer_id"],
                      content=row["content"], metadata=struct(row["metadata"]),
                      token_count=row["token_count"], sequence=row["seq"],
                      create_time=ts(row["created_at"]))


def conclusion(row: asyncpg.Record) -> pb.Conclusion:
    return pb.Conclusion(
        id=row["conclusion_id"], workspace_id=row["workspace_id"],
        observer_id=row["observer_id"], observed_id=row["observed_id"],
        session_id=row["session_id"] or "", content=row["content"], level=LEVELS[row["level"]],
        premise_ids=row["premise_ids"], source_message_ids=row["source_message_ids"],
        times_derived=row["times_derived"], create_time=ts(row["created_at"]),
        valid=row["invalidated_at"] is None, invalidate_time=ts(row["invalidated_at"]),
        superseded_by_id=row["superseded_by"] or "",
    )


def summary(row: asyncpg.Record | None) -> pb.Summary | None:
    if row is None:
        return None
    return pb.Summary(content=row["content"], type=SUMMARY_TYPES[row["summary_type"]],
                      last_message_id=row["last_message_id"],
                      last_message_sequence=row["last_message_seq"],
                      token_count=row["token_count"], create_time=ts(row["created_at"]))


def webhook(row: asyncpg.Record) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(id=row["endpoint_id"], workspace_id=row["workspace_id"],
                              url=row["url"], create_time=ts(row["created_at"]))
