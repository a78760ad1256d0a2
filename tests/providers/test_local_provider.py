"""The offline `local` provider and its heuristics: deterministic, fact extraction in the
third person, extractive summaries within budget, answers composed from relevant snippets
with abstention, lookups with the search tools it is offered when its context lacks the
answer, structured output conforming to the schema, word-by-word streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honcho_grpc.providers.llm import (
    LLMProvider,
    LocalProvider,
    Message,
    StructuredOutputError,
    ToolSpec,
    build_llm,
)
from honcho_grpc.providers.llm.local import fill_schema
from honcho_grpc.providers.llm.local_answer import ABSTAIN, compose_answer, rank_snippets
from honcho_grpc.providers.llm.local_facts import extract_facts, facts_from_transcript
from honcho_grpc.providers.llm.local_summary import summarize
from honcho_grpc.settings import LLMSettings

TRANSCRIPT = [
    "2024-05-01 10:00:00 alice: Hi! I'm a nurse in Lyon.",
    "2024-05-01 10:00:10 bob: Cool, I play the cello.",
    "2024-05-01 10:00:20 alice: I really like hiking. My dog is called Rex. How about you?",
    "2024-05-01 10:00:30 alice: I see. The clinic opened in 2019.",
]
FACTS_SCHEMA = {"type": "object", "required": ["explicit"], "properties": {"explicit": {
    "type": "array", "items": {"type": "object", "required": ["content"],
                               "properties": {"content": {"type": "string"}}}}}}


@pytest.mark.parametrize(("text", "facts"), [
    ("I'm a nurse in Lyon.", ["alice is a nurse in Lyon"]),
    ("I like hiking", ["alice likes hiking"]),
    ("I work at the hospital", ["alice works at the hospital"]),
    ("My sister is called Ana.", ["alice's sister is called Ana"]),
    ("I really enjoy my job", ["alice really enjoys alice's job"]),
    ("i've been learning the cello", ["alice has been learning the cello"]),
    ("I don't eat meat", ["alice does not eat meat"]),
    ("I went to Paris and I loved it", ["alice went to Paris and alice loved it"]),
    ("I study chemistry. I watch films", ["alice studies chemistry", "alice watches films"]),
    ("The clinic opened in 2019.", ["alice says the clinic opened in 2019"]),
    ("Hi! How are you? I see. I'm fine. That is so cool!", []),
    ("You should try the new bakery in town", []),
])
def test_facts_in_the_third_person(text: str, facts: list[str]) -> None:
    assert extract_facts("alice", text) == facts


def test_facts_from_a_transcript_about_one_speaker() -> None:
    assert facts_from_transcript(TRANSCRIPT, about={"alice"}) == [
        "alice is a nurse in Lyon", "alice really likes hiking",
        "alice's dog is called Rex", "alice says the clinic opened in 2019"]
    assert facts_from_transcript(TRANSCRIPT, about={"bob"}) == ["bob plays the cello"]
    assert facts_from_transcript(["not a transcript line"]) == []


def test_summary_keeps_informative_sentences_within_budget() -> None:
    lines = ["alice: I moved to Lyon in March 2021 for a nursing job at the Herriot hospital.",
             "bob: cool.", "alice: ok.",
             "bob: I play the cello in the Lyon orchestra every Thursday.",
             "alice: The weather is nice."]
    summary = summarize(lines, max_words=30)
    assert len(summary.split()) <= 30
    assert summary.startswith("alice: I moved to Lyon in March 2021")  # original order
    assert "cello" in summary and "cool" not in summary and "ok." not in summary
    assert summarize(lines, max_words=30) == summary
    assert summarize([], max_words=10) == ""
    assert len(summarize(["one very long sentence " * 10], max_words=5).split()) == 5


def test_answers_quote_the_relevant_snippets_or_abstain() -> None:
    snippets = ["alice works as a nurse in Lyon", "alice likes hiking",
                "alice adopted a dog named Rex"]
    assert compose_answer("Where does alice work?", snippets) == (
        "Based on what I know: alice works as a nurse in Lyon.")
    assert rank_snippets("What dog does alice have, and does she hike?", snippets,
                         ignore=["alice"]) == ["alice likes hiking",
                                               "alice adopted a dog named Rex"]
    assert compose_answer("What is her favourite film?", snippets) == ABSTAIN
    assert compose_answer("Anything?", []) == ABSTAIN


async def test_the_factory_builds_the_local_provider_by_default() -> None:
    provider = build_llm(LLMSettings())
    assert isinstance(provider, LocalProvider) and isinstance(provider, LLMProvider)


DIALECTIC = [Message("system", "You answer questions about alice."),
             Message("user", "Context:\nConclusions:\n- [2024-05-01] alice works as a nurse\n"
                             "- [2024-05-02] alice likes hiking\n\n"
                             "Question: What is alice's job as a nurse?")]


async def test_complete_is_deterministic_and_counts_tokens() -> None:
    provider = LocalProvider()
    first = await provider.complete(DIALECTIC, max_tokens=100)
    second = await LocalProvider().complete(DIALECTIC, max_tokens=100)
    assert first == second
    assert first.text == "Based on what I know: alice works as a nurse."
    assert first.usage.input_tokens > 10 and first.usage.output_tokens > 5
    assert first.finish_reason == "stop" and first.tool_calls == []


SEARCH = ToolSpec("search_conclusions", "Search what is known.",
                  {"type": "object", "required": ["query"],
                   "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}})
BY_DATE = ToolSpec("messages_by_date", "Messages between two dates.",
                   {"type": "object", "properties": {"start": {"type": "string"}}})
PREMISES = ToolSpec("get_premises", "Premises of a conclusion.",
                    {"type": "object", "required": ["conclusion_id"],
                     "properties": {"conclusion_id": {"type": "string"}}})


async def test_no_lookup_when_the_context_answers() -> None:
    done = await LocalProvider().complete(DIALECTIC, max_tokens=100,
                                          tools=[SEARCH, ToolSpec("search_memory")])
    assert done.tool_calls == [] and "nurse" in done.text
    events = [e async for e in LocalProvider().stream(DIALECTIC, max_tokens=100,
                                                      tools=[SEARCH])]
    assert "".join(e.text for e in events) == done.text and events[-1].tool_calls == []


UNANSWERED = [Message("system", "You answer questions about the peer 'alice' using only what "
                                "bob knows about alice."),
              Message("user", "Context:\nConclusions (explicit):\n- [2024-05-01 10:00] alice "
                              "likes hiking\n\nThe asker's own card:\n- ATTRIBUTE: bob plays "
                              "the cello\n\nQuestion: Which instrument does alice play?")]


async def test_looks_up_what_the_context_lacks_then_answers_from_the_results() -> None:
    provider = LocalProvider()
    first = await provider.complete(UNANSWERED, max_tokens=100, tools=[SEARCH, BY_DATE, PREMISES])
    # The asker's card is not about alice. Only the tool it can fill from the question is
    # called, with the question's content words.
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("search_conclusions", {"query": "instrument play"})]
    assert first.text == "" and first.finish_reason == "tool_calls"
    assert first.usage.input_tokens > 10 and first.usage.output_tokens > 0
    streamed = [e async for e in provider.stream(UNANSWERED, max_tokens=100, tools=[SEARCH])]
    assert [e.text for e in streamed] == [""] and streamed[-1].tool_calls == first.tool_calls

    call = first.tool_calls[0]
    looked_up = [*UNANSWERED, Message("assistant", "", tool_calls=(call,)),
                 Message("tool", "- [id c7; explicit; 2024-05-02 09:00] alice plays the cello "
                                 "in an orchestra\n- [id c8; explicit; 2024-05-03 09:00] alice "
                                 "likes jazz", tool_call_id=call.id)]
    answer = await provider.complete(looked_up, max_tokens=100, tools=[SEARCH])
    assert answer.tool_calls == []  # it looked once; it answers now
    assert answer.text == ("Based on what is known about alice: alice plays the cello in "
                           "an orchestra.")
    nothing = [*looked_up[:-1], Message("tool", "No conclusions match.", tool_call_id=call.id)]
    done = await provider.complete(nothing, max_tokens=100, tools=[SEARCH])
    assert done.text == "I don't have information about alice that answers this."


async def test_abstains_when_nothing_is_relevant() -> None:
    asked = [Message("user", "Context:\n- alice likes hiking\n\nQuestion: Which films?")]
    assert (await LocalProvider().complete(asked, max_tokens=50)).text == ABSTAIN
    # A question of several lines is the question, not evidence to quote.
    asked = [Message("user", "Context:\n- alice likes hiking\n\nQuestion: Which films?\n"
                             "films about sailing, say\n\nAnswer in one sentence.")]
    assert (await LocalProvider().complete(asked, max_tokens=50)).text == ABSTAIN


async def test_stream_word_by_word_then_usage() -> None:
    provider = LocalProvider()
    events = [e async for e in provider.stream(DIALECTIC, max_tokens=100)]
    words = [e.text for e in events[:-1]]
    text = (await provider.complete(DIALECTIC, max_tokens=100)).text
    assert words[:3] == ["Based ", "on ", "what "] and len(words) == len(text.split())
    assert "".join(words) == text
    assert events[-1].usage is not None and events[-1].finish_reason == "stop"


async def test_max_tokens_cuts_the_answer() -> None:
    done = await LocalProvider().complete(DIALECTIC, max_tokens=4)
    assert done.finish_reason == "length" and done.usage.output_tokens <= 4


@pytest.mark.parametrize("word", ["a" * 100_000, "é" * 600, "🙂" * 300, "中文字符" * 500,
                                  "https://example.com/" + "x/" * 400])
def test_summary_of_long_words_within_four_tokens_a_word(word: str) -> None:
    from honcho_grpc.providers.llm.local_summary import TOKENS_PER_WORD
    from honcho_grpc.providers.tokens import count_tokens

    lines = [f"2024-05-01 10:00:0{i} alice: {i} {word}" for i in range(3)] + \
        ["2024-05-01 10:01:00 bob: I moved to Lyon in March 2021."]
    for max_words in (1, 5, 40, 750):
        summary = summarize(lines, max_words)
        assert summary and len(summary.split()) <= max_words, max_words
        assert count_tokens(summary) <= TOKENS_PER_WORD * max_words, max_words


async def test_summary_when_the_instructions_ask_for_one() -> None:
    # Three sentences' worth: every line of the transcript is material (none is taken for a
    # question), and the nurse, the dog and the clinic outweigh hiking and the cello.
    asked = [Message("system", "Summarize the conversation in at most 18 words."),
             Message("user", "\n".join(TRANSCRIPT))]
    done = await LocalProvider().complete(asked, max_tokens=200)
    assert 0 < len(done.text.split()) <= 18 and "nurse" in done.text and "2019" in done.text


async def test_structured_facts_for_the_speaker_named_in_the_instructions() -> None:
    asked = [Message("system", "Extract facts about alice."),
             Message("user", "\n".join(TRANSCRIPT))]
    value = await LocalProvider().structured(asked, FACTS_SCHEMA, max_tokens=200)
    assert [f["content"] for f in value["explicit"]][:2] == [
        "alice is a nurse in Lyon", "alice really likes hiking"]
    assert all("bob" not in f["content"] for f in value["explicit"])


async def test_structured_answer_fills_every_type() -> None:
    schema = {"type": "object", "required": ["job", "confident", "score", "kind"],
              "properties": {"job": {"type": "string"}, "confident": {"type": "boolean"},
                             "score": {"type": "integer", "minimum": 1},
                             "kind": {"enum": ["fact", "guess"]},
                             "note": {"type": ["string", "null"]}}}
    value = await LocalProvider().structured(DIALECTIC, schema, max_tokens=100)
    assert value == {"job": "Based on what I know: alice works as a nurse.",
                     "confident": False, "score": 1, "kind": "fact",
                     "note": "Based on what I know: alice works as a nurse."}


async def test_structured_refuses_a_schema_it_cannot_satisfy() -> None:
    schema = {"type": "object", "properties": {"facts": {"type": "array", "minItems": 3}}}
    with pytest.raises(StructuredOutputError, match="fewer than 3"):
        await LocalProvider().structured(DIALECTIC, schema, max_tokens=100)


@pytest.mark.parametrize(("schema", "value"), [
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
     {"a": "x"}),  # a reference it cannot follow admits anything
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, {"a": "x"}),
    ({"type": "object", "properties": {"a": True, "b": False}}, {"a": "x", "b": None}),
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1.5}}}, {"n": 2}),
    ({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
      "$ref": "#/$defs/node"},
     json.loads('{"next": ' * 9 + "null" + "}" * 9)),  # recursion stops, with null
])
def test_callers_schemas_never_break_the_answer(schema: dict[str, Any], value: Any) -> None:
    assert fill_schema(schema, "x", []) == value


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=5) | st.sampled_from(["object", "array", "#/$defs/a"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["type", "properties", "items", "enum", "const",
                                         "minimum", "$ref", "$defs", "anyOf", "oneOf", "a"]),
                        inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_as_a_schema_gives_json(schema: Any) -> None:
    json.dumps(fill_schema(schema, "x", ["fact"]))


# -- cutting an answer to max_tokens ----------------------------------------------------------

def _truncate_one_word_at_a_time(text: str, max_tokens: int) -> tuple[str, str]:
    """The former algorithm, the reference: drop the last word until the rest fits."""
    import re

    from honcho_grpc.providers.tokens import count_tokens

    if count_tokens(text) <= max_tokens:
        return text, "stop"
    words = re.findall(r"\S+\s*", text)
    while words and count_tokens("".join(words)) > max_tokens:
        words.pop()
    return "".join(words).rstrip(), "length"


TRUNCATED_TEXTS = [
    "",
    "ok",
    "Alice is a nurse in Lyon. She likes hiking, and her dog is called Rex!",
    "  leading blanks,\ttabs and\n\nblank lines\r\n  then more words   ",
    "Zoë's café: 2024-05-01 10:00:00 — naïve déjà-vu 🙂🙂 中文字符 supercalifragilistic!!!",
    " ".join(f"word{i}," for i in range(300)),
    "https://example.com/a/very/long/path?with=query&and=more " * 12,
]


@pytest.mark.parametrize("text", TRUNCATED_TEXTS)
def test_truncate_is_the_longest_word_prefix_within_the_budget(text: str) -> None:
    from honcho_grpc.providers.llm.local import _truncate
    from honcho_grpc.providers.tokens import count_tokens

    whole = count_tokens(text)
    for limit in sorted({0, 1, 2, 3, 5, 8, 13, 40, 100, whole - 1, whole, whole + 1}):
        cut, finish = _truncate(text, limit)
        assert (cut, finish) == _truncate_one_word_at_a_time(text, limit), limit
        assert finish == ("stop" if whole <= limit else "length")
        if finish == "length":
            assert count_tokens(cut) <= max(limit, 0)


@given(st.text(alphabet=st.sampled_from(list("ab1 ,.'\n\t-é🙂")), max_size=80),
       st.integers(min_value=0, max_value=40))
@settings(max_examples=200, deadline=None)
def test_truncate_agrees_with_dropping_one_word_at_a_time(text: str, limit: int) -> None:
    from honcho_grpc.providers.llm.local import _truncate

    assert _truncate(text, limit) == _truncate_one_word_at_a_time(text, limit)


def test_truncate_counts_a_long_answer_a_few_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from honcho_grpc.providers.llm import local
    from honcho_grpc.providers.tokens import count_tokens

    counted: list[str] = []

    def counting(text: str) -> int:
        counted.append(text)
        return count_tokens(text)

    monkeypatch.setattr(local, "count_tokens", counting)
    words = [f"w{i}" for i in range(2000)]  # 5,000 tokens
    cut, finish = local._truncate(" ".join(words), 100)
    kept = len(cut.split())
    assert finish == "length" and cut == " ".join(words[:kept])
    # A prefix is counted with the blank after its last word.
    assert count_tokens(cut + " ") <= 100 < count_tokens(" ".join(words[:kept + 1]) + " ")
    # The whole text, then the prefix guessed and the one a word longer (one word at a
    # time counted it 1,950 times; a plain binary search, 12).
    assert len(counted) <= 3
    for limit in (1, 37, 999, 4999):
        counted.clear()
        local._truncate(" ".join(words), limit)
        assert len(counted) <= 4, limit


# -- an answer cut short and asked again --------------------------------------------------------

SUMMARY_CHAT = [Message("system", "Summarise the conversation. Use at most 40 words."),
                Message("user", "New messages:\n" + "\n".join(TRANSCRIPT))]


@pytest.fixture
def composed(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The word budget of each free-text answer the local provider composes (None: not a
    summary)."""
    from honcho_grpc.providers.llm import local

    budgets: list[int | None] = []
    real = local._text_within

    def counting(prompt: Any, summary_words: int | None) -> str:
        budgets.append(summary_words)
        return real(prompt, summary_words)

    monkeypatch.setattr(local, "_text_within", counting)
    return budgets


async def test_an_answer_asked_again_with_more_room_is_reused(
        composed: list[int | None]) -> None:
    llm = LocalProvider()
    cut = await llm.complete(SUMMARY_CHAT, max_tokens=8)
    whole = await llm.complete(SUMMARY_CHAT, max_tokens=500)
    assert composed == [40]  # composed once, cut twice
    assert cut.finish_reason == "length" and whole.finish_reason == "stop"
    assert whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)
    # As a provider that never saw the first request answers.
    assert whole == await LocalProvider().complete(SUMMARY_CHAT, max_tokens=500)
    assert cut == await LocalProvider().complete(SUMMARY_CHAT, max_tokens=8)


async def test_a_reused_answer_is_only_ever_the_same_request(
        composed: list[int | None]) -> None:
    unbudgeted = [Message("system", "Summarise the conversation."), SUMMARY_CHAT[1]]
    question = Message("user", "Question: what is the dog called?")
    asked = [Message("user", "\n".join(TRANSCRIPT)), question]
    # The same words, the transcript now as instructions: nothing to answer from.
    as_instructions = [Message("system", "\n".join(TRANSCRIPT)), question]
    requests = [(SUMMARY_CHAT, 8, 40), (unbudgeted, 8, 6), (unbudgeted, 60, 45),
                (asked, 8, None), (as_instructions, 8, None), (SUMMARY_CHAT, 60, ()),
                (unbudgeted, 8, ()), (asked, 500, ()), (as_instructions, 500, ())]
    llm = LocalProvider()
    for chat, room, composes in requests:
        fresh = await LocalProvider().complete(chat, max_tokens=room)
        composed.clear()
        assert await llm.complete(chat, max_tokens=room) == fresh, (chat, room)
        # Without a stated budget, a summary's follows max_tokens: 8 and 60 are two answers.
        assert composed == ([] if composes == () else [composes]), (chat, room)
    assert "Rex" in (await llm.complete(asked, max_tokens=500)).text
    assert "Rex" not in (await llm.complete(as_instructions, max_tokens=500)).text


async def test_answers_kept_are_bounded(composed: list[int | None]) -> None:
    from honcho_grpc.providers.llm.local import ANSWERS_KEPT

    llm = LocalProvider()
    chats = [[SUMMARY_CHAT[0], Message("user", f"{SUMMARY_CHAT[1].content}\n{i}")]
             for i in range(ANSWERS_KEPT + 1)]
    for chat in chats:
        await llm.complete(chat, max_tokens=500)
    await llm.complete(chats[-1], max_tokens=500)
    assert len(composed) == ANSWERS_KEPT + 1  # the newest is kept
    await llm.complete(chats[0], max_tokens=500)
    assert len(composed) == ANSWERS_KEPT + 2  # the oldest was let go
