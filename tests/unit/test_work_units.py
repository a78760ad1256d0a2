"""The work-unit protocol: keys round-trip, payloads refuse what they do not describe."""

from __future__ import annotations

import pytest

from honcho_grpc.work_units import (
    MalformedWorkUnit,
    RepresentationPayload,
    TaskType,
    WorkUnitKey,
    card_key,
    dream_key,
    parse_key,
    parse_payload,
    representation_key,
    session_of,
    summary_key,
    webhook_key,
)


def test_keys_round_trip() -> None:
    assert parse_key(representation_key("ws", "s-1", "ana")) == WorkUnitKey(
        TaskType.REPRESENTATION, "ws", session_id="s-1", observed_id="ana")
    assert parse_key(summary_key("ws", "s-1", "long")).summary_type == "long"
    dream = parse_key(dream_key("ws", "bob", "ana"))
    assert (dream.observer_id, dream.observed_id) == ("bob", "ana")
    assert parse_key(webhook_key("ws", "ep_1")).endpoint_id == "ep_1"
    assert representation_key("ws", "s", "p") == "representation:ws:s:p"
    card = parse_key(card_key("ws", "bob", "ana"))
    assert (card.task_type, card.observer_id, card.observed_id) == (TaskType.CARD, "bob", "ana")
    # The units extracted together are a session's representation units.
    assert session_of(representation_key("ws", "s-1", "ana")) == ("ws", "s-1")
    assert session_of(card_key("ws", "bob", "ana")) is None
    assert session_of("nope") is None


@pytest.mark.parametrize("key", ["", "nope:ws:x", "dream:ws:only-one", "card:ws:a", "webhook::e",
                                 "representation:ws:s:p:extra"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(MalformedWorkUnit):
        parse_key(key)


def test_payloads_are_typed_and_strict() -> None:
    payload = parse_payload("representation", {"message_id": "m", "seq": 3, "observed": "ana",
                                               "observers": ["ana", "bob"]})
    assert isinstance(payload, RepresentationPayload) and payload.seq == 3
    with pytest.raises(MalformedWorkUnit, match="extra"):
        parse_payload("representation", {"message_id": "m", "seq": 3, "observed": "ana",
                                         "observers": [], "surprise": 1})
    with pytest.raises(MalformedWorkUnit):
        parse_payload("summary", {"summary_type": "medium", "message_id": "m", "seq": 1,
                                  "every": 20})
    with pytest.raises(MalformedWorkUnit):
        parse_payload("astrology", {})
