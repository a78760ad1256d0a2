"""Domain values (honcho_grpc/model.py) to protobuf messages, and the few dict conversions
going the other way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message as ProtoMessage
from honcho_grpc_proto.v1 import resources_pb2 as pb
from honcho_grpc_proto.v1 import scope_pb2

from honcho_grpc import model

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


def workspace(w: model.Workspace) -> pb.Workspace:
    return pb.Workspace(id=w.workspace_id, metadata=struct(w.metadata),
                        configuration=from_dict(w.configuration, pb.Configuration),
                        create_time=ts(w.created_at))


def peer(p: model.Peer) -> pb.Peer:
    return pb.Peer(id=p.peer_id, workspace_id=p.workspace_id, metadata=struct(p.metadata),
                   configuration=from_dict(p.configuration, pb.PeerConfiguration),
                   create_time=ts(p.created_at))


def session(s: model.Session) -> pb.Session:
    return pb.Session(id=s.session_id, workspace_id=s.workspace_id, active=s.active,
                      metadata=struct(s.metadata),
                      configuration=from_dict(s.configuration, pb.Configuration),
                      create_time=ts(s.created_at))


def scope(s: model.Scope) -> scope_pb2.Scope:
    return scope_pb2.Scope(id=s.scope_id, workspace_id=s.workspace_id,
                           metadata=struct(s.metadata), create_time=ts(s.created_at))


def session_peer_config(m: model.SessionPeer) -> pb.SessionPeerConfiguration:
    config = pb.SessionPeerConfiguration()
    if m.observe_me is not None:
        config.observe_me = m.observe_me
    if m.observe_others is not None:
        config.observe_others = m.observe_others
    return config


def session_peer(m: model.SessionPeer) -> pb.SessionPeer:
    return pb.SessionPeer(peer_id=m.peer_id, configuration=session_peer_config(m),
                          join_time=ts(m.joined_at), leave_time=ts(m.left_at))


def message(m: model.Message) -> pb.Message:
    return pb.Message(id=m.message_id, workspace_id=m.workspace_id, session_id=m.session_id,
                      peer_id=m.peer_id, content=m.content, metadata=struct(m.metadata),
                      token_count=m.token_count, sequence=m.seq, create_time=ts(m.created_at))


def conclusion(c: model.Conclusion) -> pb.Conclusion:
    return pb.Conclusion(
        id=c.conclusion_id, workspace_id=c.workspace_id, observer_id=c.observer_id,
        observed_id=c.observed_id, session_id=c.session_id or "", content=c.content,
        level=LEVELS[c.level], premise_ids=c.premise_ids,
        source_message_ids=c.source_message_ids, times_derived=c.times_derived,
        create_time=ts(c.created_at), valid=c.valid, invalidate_time=ts(c.invalidated_at),
        superseded_by_id=c.superseded_by or "",
    )


def summary(s: model.Summary | None) -> pb.Summary | None:
    if s is None:
        return None
    return pb.Summary(content=s.content, type=SUMMARY_TYPES[s.summary_type],
                      last_message_id=s.last_message_id,
                      last_message_sequence=s.last_message_seq, token_count=s.token_count,
                      create_time=ts(s.created_at))


def webhook(e: model.WebhookEndpoint) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(id=e.endpoint_id, workspace_id=e.workspace_id, url=e.url,
                              create_time=ts(e.created_at))
