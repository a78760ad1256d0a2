"""The protocol between the server and the worker: what a queue row means.

A *work unit* is the stream of queue rows one worker handles in order: one session's messages
about one sender (representation), one summary tier of a session, one dream pair, one peer
card (an observer's card about a peer), one webhook endpoint. Its key is built and parsed
here only; payloads are typed models that refuse unknown fields; statuses are an enum passed
to SQL as parameters. Ids are `[A-Za-z0-9_-]` (see honcho_grpc/ids.py and the validators),
so `:` separates the parts unambiguously.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class TaskType(StrEnum):
    REPRESENTATION = "representation"
    SUMMARY = "summary"
    DREAM = "dream"
    CARD = "card"  # refresh one observer's peer card about one peer
    WEBHOOK = "webhook"
    NOOP = "noop"  # measures the queue's own cost (bench/queue.py)


class Status(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


# Derivation work, as GetQueueStatus counts it; card refreshes count only once due
# (store/queue derivation_status): one may wait minutes for its interval
# (PEER_CARD_REFRESH_SECONDS), and "derived" must not wait for that.
DERIVATION = (TaskType.REPRESENTATION, TaskType.SUMMARY, TaskType.DREAM)
# Units whose consecutive pending rows are handled as one batch.
BATCHED = frozenset({TaskType.REPRESENTATION})
# Units whose draining is worth telling webhooks and watchers about.
ANNOUNCE_DRAINED = frozenset({TaskType.REPRESENTATION, TaskType.SUMMARY})


class MalformedWorkUnit(ValueError):
    """A key or payload that this protocol does not describe (retrying cannot help)."""


@dataclass(frozen=True)
class WorkUnitKey:
    """A parsed `work_unit_key`. Fields a kind does not use are empty."""

    task_type: TaskType
    workspace_id: str
    session_id: str = ""
    observer_id: str = ""
    observed_id: str = ""
    summary_type: str = ""
    endpoint_id: str = ""

    def __str__(self) -> str:
        parts: tuple[str, ...]
        match self.task_type:
            case TaskType.REPRESENTATION:
                parts = (self.session_id, self.observed_id)
            case TaskType.SUMMARY:
                parts = (self.session_id, self.summary_type)
            case TaskType.DREAM | TaskType.CARD:
                parts = (self.observer_id, self.observed_id)
            case TaskType.WEBHOOK:
                parts = (self.endpoint_id,)
            case _:
                parts = (self.session_id,) if self.session_id else ()
        return ":".join((self.task_type.value, self.workspace_id, *parts))


def representation_key(workspace_id: str, session_id: str, observed_id: str) -> str:
    return str(WorkUnitKey(TaskType.REPRESENTATION, workspace_id, session_id=session_id,
                           observed_id=observed_id))


def summary_key(workspace_id: str, session_id: str, summary_type: str) -> str:
    return str(WorkUnitKey(TaskType.SUMMARY, workspace_id, session_id=session_id,
                           summary_type=summary_type))


def dream_key(workspace_id: str, observer_id: str, observed_id: str) -> str:
    return str(WorkUnitKey(TaskType.DREAM, workspace_id, observer_id=observer_id,
                           observed_id=observed_id))


def card_key(workspace_id: str, observer_id: str, observed_id: str) -> str:
    return str(WorkUnitKey(TaskType.CARD, workspace_id, observer_id=observer_id,
                           observed_id=observed_id))


def session_of(key: str) -> tuple[str, str] | None:
    """(workspace, session) of a representation unit's key, else None: the units of one
    session are extracted together (worker/queue.py join_stretch)."""
    try:
        parsed = parse_key(key)
    except MalformedWorkUnit:
        return None
    if parsed.task_type is not TaskType.REPRESENTATION:
        return None
    return parsed.workspace_id, parsed.session_id


def webhook_key(workspace_id: str, endpoint_id: str) -> str:
    return str(WorkUnitKey(TaskType.WEBHOOK, workspace_id, endpoint_id=endpoint_id))


def kind_of(key: str) -> str:
    """The task type a key names (its first part), the rest unchecked."""
    return key.partition(":")[0]


def parse_key(key: str) -> WorkUnitKey:
    """The inverse of the builders above."""
    kind, _, rest = key.partition(":")
    try:
        task_type = TaskType(kind)
    except ValueError:
        raise MalformedWorkUnit(f"unknown work unit kind in {key!r}") from None
    parts = rest.split(":")
    expected = {TaskType.REPRESENTATION: 3, TaskType.SUMMARY: 3, TaskType.DREAM: 3,
                TaskType.CARD: 3, TaskType.WEBHOOK: 2}.get(task_type)
    if (expected is not None and len(parts) != expected) or not parts[0]:
        raise MalformedWorkUnit(f"malformed work unit key {key!r}")
    ws = parts[0]
    match task_type:
        case TaskType.REPRESENTATION:
            return WorkUnitKey(task_type, ws, session_id=parts[1], observed_id=parts[2])
        case TaskType.SUMMARY:
            return WorkUnitKey(task_type, ws, session_id=parts[1], summary_type=parts[2])
        case TaskType.DREAM | TaskType.CARD:
            return WorkUnitKey(task_type, ws, observer_id=parts[1], observed_id=parts[2])
        case TaskType.WEBHOOK:
            return WorkUnitKey(task_type, ws, endpoint_id=parts[1])
        case _:
            return WorkUnitKey(task_type, ws, session_id=parts[1] if len(parts) > 1 else "")


# -- payloads ------------------------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepresentationPayload(Payload):
    """One message whose sender the observers learn about."""

    message_id: str
    seq: int
    observed: str
    observers: list[str]
    custom_instructions: str = ""


SummaryType = Literal["short", "long"]
DreamType = Literal["omni", "card_refresh"]


class SummaryPayload(Payload):
    """A summary of a tier is due at message `seq` (every `every` messages)."""

    summary_type: SummaryType
    message_id: str
    seq: int
    every: int


class DreamPayload(Payload):
    observer: str
    observed: str
    dream_type: DreamType = "omni"
    session_id: str | None = None


class CardPayload(Payload):
    """Refresh `observer`'s card about `observed` from its newest explicit conclusions."""

    observer: str
    observed: str


class WebhookPayload(Payload):
    """One event for one endpoint (the endpoint is added by the fan-out statement)."""

    type: str
    data: dict[str, Any]
    timestamp: str
    endpoint_id: str


class NoopPayload(Payload):
    model_config = ConfigDict(extra="allow", frozen=True)


PAYLOADS: dict[TaskType, type[Payload]] = {
    TaskType.REPRESENTATION: RepresentationPayload,
    TaskType.SUMMARY: SummaryPayload,
    TaskType.DREAM: DreamPayload,
    TaskType.CARD: CardPayload,
    TaskType.WEBHOOK: WebhookPayload,
    TaskType.NOOP: NoopPayload,
}


def parse_payload(task_type: str, data: dict[str, Any] | None) -> Payload:
    """The typed payload of a queue row; MalformedWorkUnit when it does not fit."""
    try:
        model = PAYLOADS[TaskType(task_type)]
    except (ValueError, KeyError):
        raise MalformedWorkUnit(f"unknown task type {task_type!r}") from None
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise MalformedWorkUnit(f"malformed {task_type} payload: {exc}") from exc


def payload_json(payload: Payload) -> dict[str, Any]:
    """The stored (jsonb) form of a payload."""
    return payload.model_dump(mode="json")
