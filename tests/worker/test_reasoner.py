"""The Reasoner with the offline `local` provider, as LLM_PROVIDER=local builds it: every step
goes through the provider's `complete` with the prompt and schema a remote model gets, and
the provider recognises the task from them. Usage is its token count, one call per step."""

from __future__ import annotations

from honcho_grpc.providers.llm import LocalProvider
from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.settings import Settings
from honcho_grpc.worker.reasoning import Reasoner
from honcho_grpc.worker.values import Conclusion

LINES = ["2024-05-01 10:00:00 alice: Hi! I'm a nurse in Lyon.",
         "2024-05-01 10:00:10 bob: Cool, I play the cello.",
         "2024-05-01 10:00:20 alice: I really like hiking. My sister is called Emma."]


def test_settings_build_the_local_provider() -> None:
    reasoner = Reasoner.from_settings(Settings(llm={"provider": "local"}))
    assert isinstance(reasoner.llm, LocalProvider) and reasoner.system == "honcho.local"


async def test_facts_about_the_observed_peer_only() -> None:
    facts, usage = await Reasoner(LocalProvider()).derive_facts(
        ["alice"], LINES, custom_instructions="Ignore what bob says about music.")
    # Every line is read, the last one too; bob is only named by the custom instructions.
    assert [(f.content, f.said_at) for f in facts] == [
        ("alice is a nurse in Lyon", "2024-05-01 10:00:00"),
        ("alice really likes hiking", "2024-05-01 10:00:20"),
        ("alice's sister is called Emma", "2024-05-01 10:00:20")]
    assert usage.calls == 1 and usage.input_tokens > 100 and usage.output_tokens > 10


async def test_one_call_files_facts_under_each_speaker() -> None:
    facts, usage = await Reasoner(LocalProvider()).derive_facts(["alice", "bob"], LINES)
    assert usage.calls == 1
    assert {f.about for f in facts} == {"alice", "bob"}
    assert all(f.content.startswith(f.about) for f in facts), facts


async def test_summary_within_its_budget_from_what_it_was_given() -> None:
    previous = "alice and bob met at a concert."
    text, usage = await Reasoner(LocalProvider()).summarize("short", previous, LINES,
                                                            max_words=14)
    assert text == "alice and bob met at a concert. alice: My sister is called Emma."
    text, _ = await Reasoner(LocalProvider()).summarize("short", previous, LINES,
                                                        max_words=30)
    assert len(text.split()) <= 30 and "nurse in Lyon" in text and "cello" in text
    assert usage.calls == 1 and usage.output_tokens > 0


async def test_summary_of_words_many_tokens_long_fits_its_room() -> None:
    # The audit's case: a previous summary holding a word of 600 tokens, then a few short
    # messages (40 words asked, 256 tokens of room, then 512): cut twice, then parked.
    lines = [f"2024-05-01 10:00:{i:02d} bob: ok" for i in range(20)]
    for previous in ("alice: " + "é" * 600, "alice: " + "a" * 100_000,
                     "alice: " + "".join(chr(0x4E00 + i) for i in range(3000))):
        text, usage = await Reasoner(LocalProvider()).summarize("short", previous, lines,
                                                                max_words=40)
        assert 0 < count_tokens(text) <= 160 and len(text.split()) <= 40, text
        assert usage.calls == 1


async def test_card_files_new_facts_first_under_their_prefix() -> None:
    card, usage = await Reasoner(LocalProvider()).update_card(
        "alice", ["ATTRIBUTE: alice likes hiking"],
        ["alice's sister lives in Porto", "alice prefers short answers", "alice likes hiking"])
    assert card == ["RELATIONSHIP: alice's sister lives in Porto",
                    "INSTRUCTION: alice prefers short answers",
                    "ATTRIBUTE: alice likes hiking"]
    assert usage.calls == 1


async def test_dream_supersedes_contradicts_and_finds_patterns() -> None:
    shown = [Conclusion("c1", "alice lives in Paris", "explicit", "2024-05-01T10:00:00"),
             Conclusion("c2", "alice likes chess", "explicit", "2024-05-01T10:01:00"),
             Conclusion("c3", "alice likes jazz", "explicit", "2024-05-01T10:02:00"),
             Conclusion("c4", "alice is vegetarian", "explicit", "2024-05-01T10:03:00"),
             Conclusion("c5", "alice likes sushi", "explicit", "2024-05-01T10:04:00"),
             Conclusion("c6", "alice is not vegetarian", "explicit", "2024-05-01T10:05:00"),
             Conclusion("c7", "alice lives in Berlin", "explicit", "2024-05-01T10:06:00"),
             Conclusion("c8", "alice likes many things", "inductive", "2024-05-01T10:07:00")]
    plan, usage = await Reasoner(LocalProvider()).dream("alice", shown)
    assert plan.superseded == [("c1", "c7")]
    assert [(d.level, d.premise_ids) for d in plan.derived] == [
        ("inductive", ["c2", "c3", "c5"]), ("contradiction", ["c4", "c6"])]
    assert plan.derived[0].content == "alice repeatedly likes: chess; jazz; sushi"
    assert usage.calls == 1 and usage.input_tokens > 0
