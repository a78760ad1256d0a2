"""Plain Python values returned by the client (no protobuf types leak into the API)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import DecodeError
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    dialectic_pb2,
    event_pb2,
    message_pb2,
    resources_pb2,
    session_pb2,
)

JSON = dict[str, Any]

# --------------------------------------------------------------------------- conversions


def _unfloat(value: Any) -> Any:
    """Struct stores every number as a double; give integral ones back as int, as JSON would."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _unfloat(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unfloat(v) for v in value]
    return value


def struct_to_dict(value: struct_pb2.Struct) -> JSON:
    result: JSON = _unfloat(json_format.MessageToDict(value))
    return result


def dict_to_struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    out = struct_pb2.Struct()
    try:
        out.update(dict(value))
        # A request copies it by parsing, which stops at protobuf's nesting limit (~30
        # objects): found here, it is the caller's ValueError, not a DecodeError later.
        struct_pb2.Struct.FromString(out.SerializeToString())
    except OverflowError:  # Struct numbers are doubles
        raise ValueError("metadata: an integer is too large for a double") from None
    except DecodeError:
        raise ValueError("metadata: nested too deeply for protobuf") from None
    return out


def to_datetime(ts: timestamp_pb2.Timestamp, present: bool = True) -> dt.datetime | None:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


def to_timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (e.g. datetime.now(timezone.utc))")
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def message_to_dict(message: Any) -> JSON:
    result: JSON = _unfloat(json_format.MessageToDict(message, preserving_proto_field_name=True))
    return result


def parse_into(value: Mapping[str, Any] | Any | None, message_type: type[Any]) -> Any:
    """A configuration given as a dict (snake_case or lowerCamel keys) or as the proto."""
    if value is None:
        return None
    if isinstance(value, message_type):
        return value
    return json_format.ParseDict(dict(value), message_type())


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Message:
    """A stored message. `score` is set on search results (fused relevance, higher is better)."""

    id: str
    workspace_id: str
    session_id: str
    peer_id: str
    content: str
    metadata: JSON
    token_count: int
    sequence: int
    created_at: dt.datetime | None
    score: float | None = None

    @classmethod
    def from_proto(cls, m: resources_pb2.Message, score: float | None = None) -> Message:
        return cls(id=m.id, workspace_id=m.workspace_id, session_id=m.session_id,
                   peer_id=m.peer_id, content=m.content, metadata=struct_to_dict(m.metadata),
                   token_count=m.token_count, sequence=m.sequence,
                   created_at=to_datetime(m.create_time, m.HasField("create_time")),
                   score=score)


@dataclass(frozen=True)
class MessageCreate:
    """A message to write; build it with `peer.message("text")`."""

    peer_id: str
    content: str
    metadata: Mapping[str, Any] | None = None
    configuration: Mapping[str, Any] | None = None
    created_at: dt.datetime | None = None

    def to_proto(self) -> message_pb2.MessageInput:
        return message_pb2.MessageInput(
            peer_id=self.peer_id, content=self.content, metadata=dict_to_struct(self.metadata),
            configuration=parse_into(self.configuration, resources_pb2.MessageConfiguration),
            create_time=to_timestamp(self.created_at))


_SUMMARY_TYPES = {resources_pb2.SUMMARY_TYPE_SHORT: "short",
                  resources_pb2.SUMMARY_TYPE_LONG: "long"}


@dataclass(frozen=True)
class Summary:
    content: str
    type: str  # "short" | "long"
    last_message_id: str
    last_message_sequence: int
    token_count: int
    created_at: dt.datetime | None

    @classmethod
    def from_proto(cls, s: resources_pb2.Summary) -> Summary:
        return cls(content=s.content, type=_SUMMARY_TYPES.get(s.type, "unspecified"),
                   last_message_id=s.last_message_id,
                   last_message_sequence=s.last_message_sequence, token_count=s.token_count,
                   created_at=to_datetime(s.create_time, s.HasField("create_time")))


@dataclass(frozen=True)
class Summaries:
    session_id: str
    short: Summary | None
    long: Summary | None

    @classmethod
    def from_proto(cls, r: session_pb2.GetSummariesResponse) -> Summaries:
        return cls(session_id=r.session_id,
                   short=Summary.from_proto(r.short_summary) if r.HasField("short_summary")
                   else None,
                   long=Summary.from_proto(r.long_summary) if r.HasField("long_summary")
                   else None)

    # The names of Honcho SDK's SessionSummaries.
    @property
    def id(self) -> str:
        return self.session_id

    @property
    def short_summary(self) -> Summary | None:
        return self.short

    @property
    def long_summary(self) -> Summary | None:
        return self.long


@dataclass(frozen=True)
class SessionContext:
    """Prompt-ready context of a session within a token budget."""

    session_id: str
    messages: list[Message]
    summary: Summary | None
    peer_representation: str
    peer_card: list[str]

    @classmethod
    def from_proto(cls, r: session_pb2.GetContextResponse) -> SessionContext:
        return cls(session_id=r.session_id,
                   messages=[Message.from_proto(m) for m in r.messages],
                   summary=Summary.from_proto(r.summary) if r.HasField("summary") else None,
                   peer_representation=r.peer_representation, peer_card=list(r.peer_card))

    def _preamble(self) -> str:
        parts = []
        if self.summary is not None:
            parts.append(f"Summary of the conversation so far:\n{self.summary.content}")
        if self.peer_representation:
            parts.append(f"What is known about the user:\n{self.peer_representation}")
        if self.peer_card:
            parts.append("Peer card:\n" + "\n".join(self.peer_card))
        return "\n\n".join(parts)

    def to_openai(self, assistant: Any) -> list[dict[str, str]]:
        """Chat Completions messages: the assistant peer's turns are `assistant`, the others
        `user` (with `name`); summary, representation and card lead as one system message."""
        me = getattr(assistant, "id", assistant)
        out: list[dict[str, str]] = []
        if preamble := self._preamble():
            out.append({"role": "system", "content": preamble})
        for m in self.messages:
            if m.peer_id == me:
                out.append({"role": "assistant", "content": m.content})
            else:
                out.append({"role": "user", "content": m.content, "name": m.peer_id})
        return out

    def to_anthropic(self, assistant: Any) -> list[dict[str, str]]:
        """Anthropic Messages turns (pass the system text separately: `system_prompt()`)."""
        me = getattr(assistant, "id", assistant)
        return [{"role": "assistant", "content": m.content} if m.peer_id == me
                else {"role": "user", "content": f"{m.peer_id}: {m.content}"}
                for m in self.messages]

    def system_prompt(self) -> str:
        return self._preamble()


@dataclass(frozen=True)
class ScopeMember:
    """A session of a scope (`scope.status()`): when it joined (the scope's reads see it from
    then on) and how many explicit conclusions drawn in it they see."""

    session_id: str
    added_at: dt.datetime | None
    conclusions: int


@dataclass(frozen=True)
class PeerContext:
    peer_id: str
    target_id: str
    representation: str
    peer_card: list[str]


@dataclass(frozen=True)
class SessionPeerConfig:
    """A member's observation settings in one session; None inherits the default."""

    observe_me: bool | None = None
    observe_others: bool | None = None

    @classmethod
    def from_proto(cls, c: resources_pb2.SessionPeerConfiguration) -> SessionPeerConfig:
        return cls(observe_me=c.observe_me if c.HasField("observe_me") else None,
                   observe_others=c.observe_others if c.HasField("observe_others") else None)

    def to_proto(self) -> resources_pb2.SessionPeerConfiguration:
        return resources_pb2.SessionPeerConfiguration(observe_me=self.observe_me,
                                                      observe_others=self.observe_others)


@dataclass(frozen=True)
class SessionMember:
    peer_id: str
    configuration: SessionPeerConfig
    joined_at: dt.datetime | None
    left_at: dt.datetime | None

    @classmethod
    def from_proto(cls, p: resources_pb2.SessionPeer) -> SessionMember:
        return cls(peer_id=p.peer_id,
                   configuration=SessionPeerConfig.from_proto(p.configuration),
                   joined_at=to_datetime(p.join_time, p.HasField("join_time")),
                   left_at=to_datetime(p.leave_time, p.HasField("leave_time")))


_LEVELS = {
    resources_pb2.CONCLUSION_LEVEL_EXPLICIT: "explicit",
    resources_pb2.CONCLUSION_LEVEL_DEDUCTIVE: "deductive",
    resources_pb2.CONCLUSION_LEVEL_INDUCTIVE: "inductive",
    resources_pb2.CONCLUSION_LEVEL_CONTRADICTION: "contradiction",
}


@dataclass(frozen=True)
class Conclusion:
    id: str
    workspace_id: str
    observer_id: str
    observed_id: str
    session_id: str
    content: str
    level: str  # explicit | deductive | inductive | contradiction
    premise_ids: list[str]
    source_message_ids: list[str]
    times_derived: int
    created_at: dt.datetime | None
    valid: bool
    invalidated_at: dt.datetime | None
    superseded_by_id: str

    @classmethod
    def from_proto(cls, c: resources_pb2.Conclusion) -> Conclusion:
        return cls(id=c.id, workspace_id=c.workspace_id, observer_id=c.observer_id,
                   observed_id=c.observed_id, session_id=c.session_id, content=c.content,
                   level=_LEVELS.get(c.level, "unspecified"), premise_ids=list(c.premise_ids),
                   source_message_ids=list(c.source_message_ids),
                   times_derived=c.times_derived,
                   created_at=to_datetime(c.create_time, c.HasField("create_time")),
                   valid=c.valid,
                   invalidated_at=to_datetime(c.invalidate_time, c.HasField("invalidate_time")),
                   superseded_by_id=c.superseded_by_id)


@dataclass(frozen=True)
class ConclusionCreate:
    """An explicit conclusion to store (observer holds `content` about observed)."""

    content: str
    observed_id: str = ""
    session_id: str = ""

    def to_proto(self, observer_id: str) -> conclusion_pb2.ConclusionInput:
        return conclusion_pb2.ConclusionInput(observer_id=observer_id,
                                              observed_id=self.observed_id or observer_id,
                                              session_id=self.session_id, content=self.content)


class ChatAnswer(str):
    """The answer text (a `str`), with the token usage and the conclusions it used."""

    input_tokens: int
    output_tokens: int
    conclusion_ids: list[str]

    def __new__(cls, r: dialectic_pb2.ChatResponse) -> ChatAnswer:
        answer = super().__new__(cls, r.content)
        answer.input_tokens = r.usage.input_tokens
        answer.output_tokens = r.usage.output_tokens
        answer.conclusion_ids = list(r.conclusion_ids)
        return answer


_FINISH = {dialectic_pb2.FINISH_REASON_STOP: "stop",
           dialectic_pb2.FINISH_REASON_MAX_TOKENS: "max_tokens"}


@dataclass(frozen=True)
class ChatCompletion:
    """The end of a streamed answer."""

    finish_reason: str  # stop | max_tokens
    input_tokens: int
    output_tokens: int
    conclusion_ids: list[str]

    @classmethod
    def from_proto(cls, c: dialectic_pb2.ChatCompletion) -> ChatCompletion:
        return cls(finish_reason=_FINISH.get(c.finish_reason, "unspecified"),
                   input_tokens=c.usage.input_tokens, output_tokens=c.usage.output_tokens,
                   conclusion_ids=list(c.conclusion_ids))


REASONING_LEVELS = {
    "minimal": dialectic_pb2.REASONING_LEVEL_MINIMAL,
    "low": dialectic_pb2.REASONING_LEVEL_LOW,
    "medium": dialectic_pb2.REASONING_LEVEL_MEDIUM,
    "high": dialectic_pb2.REASONING_LEVEL_HIGH,
    "max": dialectic_pb2.REASONING_LEVEL_MAX,
}


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    in_progress: int
    completed: int
    failed: int

    @classmethod
    def from_proto(cls, q: resources_pb2.QueueCounts) -> QueueCounts:
        return cls(pending=q.pending, in_progress=q.in_progress, completed=q.completed,
                   failed=q.failed)

    @property
    def idle(self) -> bool:
        """Nothing waiting or running."""
        return self.pending == 0 and self.in_progress == 0


@dataclass(frozen=True)
class QueueStatus:
    totals: QueueCounts
    sessions: dict[str, QueueCounts] = field(default_factory=dict)
    # Messages not yet embedded (not yet found by meaning) and the oldest one's wait, seconds.
    embedding_pending: int = 0
    embedding_oldest_age: float = 0.0


EVENT_TYPES = {
    "messages_created": event_pb2.EVENT_TYPE_MESSAGES_CREATED,
    "conclusions_derived": event_pb2.EVENT_TYPE_CONCLUSIONS_DERIVED,
    "conclusion_invalidated": event_pb2.EVENT_TYPE_CONCLUSION_INVALIDATED,
    "summary_created": event_pb2.EVENT_TYPE_SUMMARY_CREATED,
    "peer_card_updated": event_pb2.EVENT_TYPE_PEER_CARD_UPDATED,
    "queue_drained": event_pb2.EVENT_TYPE_QUEUE_DRAINED,
    "embeddings_drained": event_pb2.EVENT_TYPE_EMBEDDINGS_DRAINED,
}
_EVENT_NAMES = {v: k for k, v in EVENT_TYPES.items()}


@dataclass(frozen=True)
class Event:
    type: str  # one of EVENT_TYPES
    workspace_id: str
    session_id: str
    peer_id: str
    time: dt.datetime | None
    data: JSON

    @classmethod
    def from_proto(cls, e: event_pb2.Event) -> Event:
        return cls(type=_EVENT_NAMES.get(e.type, "unspecified"), workspace_id=e.workspace_id,
                   session_id=e.session_id, peer_id=e.peer_id,
                   time=to_datetime(e.time, e.HasField("time")), data=struct_to_dict(e.data))


@dataclass(frozen=True)
class WebhookEndpoint:
    """A URL the workspace's events are POSTed to."""

    id: str
    workspace_id: str
    url: str
    created_at: dt.datetime | None

    @classmethod
    def from_proto(cls, w: resources_pb2.WebhookEndpoint) -> WebhookEndpoint:
        return cls(id=w.id, workspace_id=w.workspace_id, url=w.url,
                   created_at=to_datetime(w.create_time, w.HasField("create_time")))
