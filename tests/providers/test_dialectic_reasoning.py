"""The dialectic's reasoning tools and prompt through each official SDK (openai, anthropic)
against a fake speaking its wire protocol, with a scripted model: a counting question answered
after several searches that each find the items, "what did you recommend me?" answered from
the other speaker's message and the turns around it, date-filtered search, the reasoning
chain in both directions, visibility (a session the asker was not in is never shown), and a
changed fact shown with both values, dated, the newer one marked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2
from honcho_grpc_proto.v1 import dialectic_pb2 as pb
from honcho_grpc_proto.v1 import message_pb2

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from tests.fakes.script import Reply
from tests.providers.conftest import ChatRig, chat_rig

Said = tuple[str, str, datetime]  # speaker, text, when


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


async def say(rig: ChatRig, ws: str, session: str, *said: Said) -> list[str]:
    """Messages into a session (created with its speakers as members); their ids."""
    def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
        value = timestamp_pb2.Timestamp()
        value.FromDatetime(moment)
        return value

    r = await rig.stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id=session, messages=[
            message_pb2.MessageInput(peer_id=peer, content=text, create_time=stamp(moment))
            for peer, text, moment in said]))
    return [m.id for m in r.messages]


async def conclude(db: Database, ws: str, observer: str, observed: str,
                   *rows: tuple[str, str, str, list[str], datetime, str | None]) -> None:
    """Conclusions as the worker would store them: (id, level, content, premises, time said,
    id of the conclusion that superseded it)."""
    embedder = FakeEmbedder(384)
    for cid, level, content, premises, said, superseded_by in rows:
        await db.pool.execute(
            "INSERT INTO conclusions (workspace_id, conclusion_id, observer_id, observed_id, "
            "content, level, premise_ids, embedding, created_at, invalidated_at, "
            "superseded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
            "CASE WHEN $10::text IS NOT NULL THEN now() END, $10)",
            ws, cid, observer, observed, content, level, premises,
            await embedder.embed_one(content), said, superseded_by)


def asks(ws: str, asker: str, target: str, query: str,
         level: int = pb.REASONING_LEVEL_LOW) -> pb.ChatRequest:
    return pb.ChatRequest(query=pb.ChatQuery(
        workspace_id=ws, peer_id=asker, target_id=target, query=query,
        reasoning_level=level))  # type: ignore[arg-type]


HIKES: list[Said] = [
    ("alice", "I hiked Mount Tam on Saturday, 12 miles", at(3, 2)),
    ("coach", "Great pace! Stretch after every hike.", at(3, 2, 13)),
    ("alice", "Did the Dipsea trail today with my sister", at(3, 9)),
    ("alice", "Another hike done: Mission Peak at sunrise", at(3, 16)),
    ("alice", "Back on Mount Tam again, same loop as before", at(3, 23)),
]


async def test_a_count_is_made_from_several_searches(rig: ChatRig, db: Database,
                                                     ws: str) -> None:
    await say(rig, ws, "s-hikes", *HIKES)
    await conclude(db, ws, "coach", "alice",
                   ("c-tam", "explicit", "alice hiked Mount Tam", [], at(3, 2), None),
                   ("c-dipsea", "explicit", "alice hiked the Dipsea trail", [], at(3, 9), None))
    rig.fake.push(
        Reply("", tool_calls=[
            ("q1", "grep_messages", {"text": "hike"}),
            ("q2", "search_messages", {"query": "hiking trail mountain peak", "limit": 20}),
            ("q3", "search_conclusions", {"query": "alice hiked"})]),
        Reply("", tool_calls=[("q4", "grep_messages", {"text": "Mount Tam"}),
                              ("q5", "grep_messages", {"text": "trail"})]),
        Reply("alice went on 3 distinct hikes: 1. Mount Tam (2024-03-02, again 2024-03-23), "
              "2. the Dipsea trail (2024-03-09), 3. Mission Peak (2024-03-16)."))
    r = await rig.stubs.dialectic.Chat(asks(ws, "coach", "alice",
                                            "How many different hikes did alice do?"))

    assert r.content.startswith("alice went on 3 distinct hikes")
    assert len(rig.fake.bodies) == 3  # two rounds of lookups, then the answer in a third
    first = rig.fake.bodies[0]
    assert "How many" in rig.prompt_text(first) and "Lists and counts" in rig.prompt_text(first)
    results = rig.tool_results(rig.fake.bodies[2])
    assert sorted(results) == ["q1", "q2", "q3", "q4", "q5"]
    # Each search found items, every speaker's messages included, labelled and dated.
    assert "3 messages contain 'hike'" in results["q1"]
    assert "alice: I hiked Mount Tam" in results["q1"]
    assert "coach: Great pace! Stretch after every hike." in results["q1"]
    assert "[2024-03-16 Sat 12:00; session s-hikes; id " in results["q1"]
    for text in ("Mount Tam on Saturday", "Dipsea trail", "Mission Peak"):
        assert text in results["q2"], results["q2"]
    assert "c-tam" in results["q3"] and "c-dipsea" in results["q3"]
    assert "2 messages contain 'Mount Tam'" in results["q4"]
    assert "Back on Mount Tam again" in results["q4"]
    assert "1 message contains 'trail'" in results["q5"] and "Dipsea" in results["q5"]
    assert {"c-tam", "c-dipsea"} <= set(r.conclusion_ids)


async def test_what_you_recommended_comes_from_the_other_speaker(rig: ChatRig, db: Database,
                                                                 ws: str) -> None:
    ids = await say(rig, ws, "s-books",
                    ("alice", "Can you suggest a novel for my flight?", at(4, 1)),
                    ("guide", "I recommend Piranesi by Susanna Clarke", at(4, 1, 13)),
                    ("alice", "Thanks, I'll buy it at the airport", at(4, 1, 14)),
                    ("alice", "The flight was delayed by two hours", at(4, 2)))
    recommendation = ids[1]
    rig.fake.push(
        Reply("", tool_calls=[("g1", "grep_messages", {"text": "recommend"})]),
        Reply("", tool_calls=[("g2", "message_context",
                               {"message_id": recommendation, "before": 1, "after": 1})]),
        Reply("I recommended Piranesi by Susanna Clarke on 2024-04-01, for your flight."))
    r = await rig.stubs.dialectic.Chat(asks(ws, "alice", "alice",
                                            "What book did you recommend me?"))

    assert "Piranesi" in r.content
    # The prefetch already searched every speaker: guide's words are in the first prompt.
    assert "guide: I recommend Piranesi" in rig.prompt_text(rig.fake.bodies[0])
    results = rig.tool_results(rig.fake.bodies[2])
    assert f"session s-books; id {recommendation}] guide: I recommend Piranesi" in results["g1"]
    context = results["g2"].splitlines()
    # The neighbours, in order: the question before, the thanks after, nothing further.
    assert [line.split("] ", 1)[1] for line in context] == [
        "alice: Can you suggest a novel for my flight?",
        "guide: I recommend Piranesi by Susanna Clarke",
        "alice: Thanks, I'll buy it at the airport"]


async def test_search_by_period(rig: ChatRig, db: Database, ws: str) -> None:
    await say(rig, ws, "s-cat",
              ("alice", "My cat Miso caught a cold", at(3, 2)),
              ("alice", "Miso the cat is fine again", at(3, 20)),
              ("alice", "Took the cat Miso to the vet for a checkup", at(4, 5)),
              ("alice", "The vet bill was $120, 50% more than last time", at(4, 5, 13)))
    rig.fake.push(
        Reply("", tool_calls=[
            ("d1", "search_messages", {"query": "cat Miso", "start": "2024-03-10",
                                       "end": "2024-03-31"}),
            ("d2", "search_messages", {"query": "cat Miso"}),
            ("d3", "grep_messages", {"text": "Miso", "end": "2024-03-02"}),
            ("d4", "messages_by_date", {"start": "2024-04-01T00:00:00Z"})]),
        # No word to index: the literal text is searched for.
        Reply("", tool_calls=[("d5", "grep_messages", {"text": "$"}),
                              ("d6", "grep_messages", {"text": "50%"}),
                              ("d7", "grep_messages", {"text": "_"})]),
        Reply("Miso recovered by 2024-03-20."))
    await rig.stubs.dialectic.Chat(asks(ws, "alice", "alice",
                                        "When was Miso well again in March?"))

    results = rig.tool_results(rig.fake.bodies[1])
    assert "fine again" in results["d1"]
    assert "caught a cold" not in results["d1"] and "vet" not in results["d1"]
    assert all(t in results["d2"] for t in ("caught a cold", "fine again", "vet"))
    # A bare date as the end includes that day.
    assert "caught a cold" in results["d3"] and "fine again" not in results["d3"]
    assert "vet" in results["d4"] and "fine again" not in results["d4"]
    results = rig.tool_results(rig.fake.bodies[2])
    assert "1 message contains '$'" in results["d5"] and "$120" in results["d5"]
    assert "$120" in results["d6"]
    assert results["d7"] == "No messages contain '_'."  # LIKE's wildcards are literal


async def test_reasoning_is_followed_both_ways(rig: ChatRig, db: Database, ws: str) -> None:
    await say(rig, ws, "s-1", ("alice", "hello", at(3, 1)))
    await say(rig, ws, "s-1", ("bob", "hi", at(3, 1, 13)))
    await say(rig, ws, "s-2", ("carol", "hey alice", at(3, 1, 14)))
    await conclude(db, ws, "bob", "alice",
                   ("c-run", "explicit", "alice runs every morning", [], at(3, 1), None),
                   ("c-race", "explicit", "alice signed up for a marathon", [], at(3, 5), None),
                   ("c-athlete", "deductive", "alice trains for endurance races",
                    ["c-run", "c-race"], at(3, 5), None),
                   ("c-pattern", "inductive", "alice keeps to fitness routines",
                    ["c-athlete", "c-run"], at(3, 6), None))
    await conclude(db, ws, "carol", "alice",
                   ("c-carol", "deductive", "alice is tired", ["c-run"], at(3, 7), None))
    rig.fake.push(
        Reply("", tool_calls=[
            ("p1", "get_premises", {"conclusion_id": "c-athlete"}),
            ("p2", "get_dependents", {"conclusion_id": "c-run"}),
            ("p3", "get_dependents", {"conclusion_id": "c-pattern"}),
            ("p4", "get_dependents", {"conclusion_id": "c-carol"})]),
        Reply("alice trains for endurance races: she runs daily and entered a marathon."))
    r = await rig.stubs.dialectic.Chat(asks(ws, "bob", "alice", "Is alice an athlete?"))

    results = rig.tool_results(rig.fake.bodies[1])
    premises = results["p1"].split("Premises:")[1]
    assert "c-run" in premises and "c-race" in premises and "said 2024-03-05" in premises
    dependents = results["p2"].split("Reasoned from it:")[1]
    assert "c-athlete" in dependents and "c-pattern" in dependents
    assert "c-carol" not in dependents  # carol's reasoning is not bob's memory
    assert "(none: no conclusion rests on it)" in results["p3"]
    assert results["p4"].startswith("error: no conclusion 'c-carol'")
    assert {"c-athlete", "c-run", "c-race", "c-pattern"} <= set(r.conclusion_ids)
    assert "c-carol" not in r.conclusion_ids


async def test_a_session_the_asker_was_not_in_is_never_shown(rig: ChatRig, db: Database,
                                                             ws: str) -> None:
    await say(rig, ws, "s-shared", ("alice", "I adopted a cat named Miso", at(3, 2)),
              ("bob", "Miso is a lovely name", at(3, 2, 13)))
    (secret,) = await say(rig, ws, "s-private",
                          ("alice", "My salary is 90k and Miso the cat is sick", at(3, 5)))
    await say(rig, ws, "s-private", ("carol", "sorry to hear about Miso", at(3, 5, 13)))
    rig.fake.push(
        Reply("", tool_calls=[
            ("v1", "grep_messages", {"text": "Miso"}),
            ("v2", "search_messages", {"query": "salary Miso sick", "limit": 40}),
            ("v3", "messages_by_date", {"start": "2024-01-01", "end": "2024-12-31"}),
            ("v4", "message_context", {"message_id": secret, "before": 10, "after": 10})]),
        Reply("I don't have information about alice's salary."))
    r = await rig.stubs.dialectic.Chat(asks(ws, "bob", "alice", "What is alice's salary?"))

    assert r.content == "I don't have information about alice's salary."
    results = rig.tool_results(rig.fake.bodies[1])
    for call in ("v1", "v2", "v3"):
        assert "I adopted a cat named Miso" in results[call]
        assert "salary" not in results[call] and "sorry to hear" not in results[call]
    assert results["v4"] == f"error: no message '{secret}' is visible here"
    for body in rig.fake.bodies:  # nor in any prompt the model was sent
        assert "90k" not in rig.prompt_text(body) and "sorry to hear" not in \
            rig.prompt_text(body)


async def test_a_changed_fact_shows_both_values_dated_the_newer_marked(
        rig: ChatRig, db: Database, ws: str) -> None:
    await say(rig, ws, "s-1", ("alice", "I live in Paris", at(3, 2)),
              ("alice", "I moved to Berlin last week", at(5, 10)),
              ("alice", "I work at Acme", at(1, 15)),
              ("alice", "I just started at Globex", at(6, 1)))
    await say(rig, ws, "s-1", ("bob", "congrats", at(6, 1, 13)))
    await conclude(db, ws, "bob", "alice",
                   # A dream replaced Paris by Berlin; the jobs are both still valid.
                   ("c-berlin", "explicit", "alice lives in Berlin", [], at(5, 10), None),
                   ("c-paris", "explicit", "alice lives in Paris", [], at(3, 2), "c-berlin"),
                   ("c-globex", "explicit", "alice works at Globex", [], at(6, 1), None),
                   ("c-acme", "explicit", "alice works at Acme", [], at(1, 15), None))
    rig.fake.push(Reply("alice lives in Berlin (since May 2024; before that, Paris)."))
    r = await rig.stubs.dialectic.Chat(asks(ws, "bob", "alice",
                                            "Where does alice live and work?"))

    assert r.content.startswith("alice lives in Berlin")
    prompt = rig.fake.bodies[0]
    text = rig.prompt_text(prompt)
    assert ("[said 2024-05-10 Fri 12:00; id c-berlin; newer value, replaces c-paris] "
            "alice lives in Berlin") in text
    assert ("[said 2024-03-02 Sat 12:00; id c-paris; superseded by newer c-berlin] "
            "alice lives in Paris") in text
    # Both jobs, dated, oldest first: the later one reads as the newer value.
    assert text.index("alice works at Acme") < text.index("alice works at Globex")
    assert "[said 2024-06-01 Sat 12:00; id c-globex]" in text
    assert "Changed values" in text and "most recently said one holds" in text
    # The superseded one is history: shown, but not reported as a conclusion used.
    assert "c-berlin" in r.conclusion_ids and "c-paris" not in r.conclusion_ids


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_each_level_calls_its_own_model_with_its_effort_and_budget(
        kind: str, pg_dsn: str, db: Database, ws: str) -> None:
    async with chat_rig(kind, pg_dsn, db, dialectic_minimal_model="small-model",
                        dialectic_minimal_reasoning_effort="low",
                        dialectic_minimal_max_output_tokens=700,
                        dialectic_low_model="tool-model") as rig:
        await say(rig, ws, "s", ("alice", "I play the cello.", at(3, 2)))
        rig.fake.push(Reply("alice plays the cello."), Reply("alice plays the cello."))
        await rig.stubs.dialectic.Chat(asks(ws, "alice", "alice", "What does alice play?",
                                            pb.REASONING_LEVEL_MINIMAL))
        await rig.stubs.dialectic.Chat(asks(ws, "alice", "alice", "What does alice play?"))
        minimal, low = rig.fake.bodies
    assert minimal["model"] == "small-model" and low["model"] == "tool-model"
    if kind == "openai":
        assert minimal["reasoning_effort"] == "low" and minimal["max_tokens"] == 700
        assert "reasoning_effort" not in low and low["max_tokens"] == 2000  # the level's own
    else:
        # The streamed minimal answer thinks (its budget on top); the tool rounds do not.
        assert minimal["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert minimal["max_tokens"] == 700 + 2048
        assert "thinking" not in low and low["max_tokens"] == 2000
