"""The provider-neutral vocabulary: messages, tools, completions, stream events, errors, and
the `LLMProvider` interface every provider implements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class ToolCall:
    """A call the model asks for; `arguments` is already parsed from the provider's JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One chat turn. `tool_calls` only on assistant turns; `tool_call_id` only on tool turns
    (the result of the call with that id)."""

    role: Role
    content: str = ""
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


# Plain dicts ({"role": ..., "content": ...}) are accepted too: existing callers build them.
MessageLike: TypeAlias = Message | Mapping[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; `parameters` is a JSON Schema for its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        # A provider's counts, as it sent them: a negative or missing one bills nothing.
        self.input_tokens = max(0, int(self.input_tokens or 0))
        self.output_tokens = max(0, int(self.output_tokens or 0))


# Finish reasons are normalised to this vocabulary whatever the provider calls them.
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass
class Completion:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StreamEvent:
    """A text delta; the last event of a stream has no text and carries usage, the finish
    reason and the tool calls the model made (assembled from their streamed pieces)."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


class LLMError(Exception):
    """A provider call that failed for good (after our retries, if it was retryable)."""

    def __init__(self, message: str, *, retryable: bool = False,
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


T = TypeVar("T")

# What reading a reply of the wrong shape raises: the SDKs build their reply objects from
# the provider's JSON without validating it, so `choices: null` or a garbled stream surfaces
# as one of these wherever the reply is read.
MALFORMED_REPLY: tuple[type[Exception], ...] = (TypeError, AttributeError, KeyError,
                                                IndexError, ValueError)


@contextmanager
def reading_reply() -> Iterator[None]:
    """Around the code that reads a provider's reply: a reply of the wrong shape is the
    provider's failure (LLMError, retryable), not INTERNAL. LLMError passes unchanged."""
    try:
        yield
    except MALFORMED_REPLY as exc:
        raise LLMError(f"the provider's reply has an unexpected shape ({type(exc).__name__}: "
                       f"{str(exc)[:200]})", retryable=True) from exc


# A model that ignores max_tokens (a broken or hostile server) is cut off at this many
# characters a token of its budget: far above any real tokenizer's 3-4, and it bounds the
# memory and the size of what reaches a caller (a gRPC message is at most 8 MB here).
MAX_CHARS_PER_TOKEN = 16


def text_of(value: object) -> str:
    """A reply's text field: None is no text; anything but a string is a malformed reply
    (read inside reading_reply, it becomes the provider's LLMError)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"text of type {type(value).__name__}")
    return value


def capped(text: str, max_tokens: int) -> tuple[str, bool]:
    """`text` within MAX_CHARS_PER_TOKEN characters a token of `max_tokens`, and whether it
    was cut."""
    kept = Said(max_tokens).take(text)
    return kept, len(kept) < len(text)


class Said:
    """What a stream has said so far, within its room (MAX_CHARS_PER_TOKEN a token)."""

    def __init__(self, max_tokens: int) -> None:
        self.limit = max(1, max_tokens) * MAX_CHARS_PER_TOKEN
        self.room = self.limit

    @property
    def full(self) -> bool:
        return self.room <= 0

    def take(self, piece: str) -> str:
        """The part of `piece` that fits; '' when none does."""
        piece = piece[:self.room]
        self.room -= len(piece)
        return piece

    def last_event(self, usage: Usage, finish: str, calls: list[ToolCall]) -> StreamEvent:
        """The stream's closing event. A stream that said nothing, called nothing and gave
        no finish reason was no answer (an empty body, or not SSE at all), not an empty one."""
        if self.room == self.limit and not (calls or finish):
            raise LLMError("the provider's stream ended without an answer", retryable=True)
        return StreamEvent(usage=usage, finish_reason=finish or "stop", tool_calls=calls)


async def within(events: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """`events`, each awaited at most `seconds` (TimeoutError). The SDKs' timeout bounds
    each socket read, so a server trickling a byte at a time never trips it; this bounds
    the wait for each whole event."""
    source = aiter(events)
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(source)
        except StopAsyncIteration:
            return
        yield item


class StructuredOutputError(LLMError):
    """The model's answer is not JSON matching the requested schema, even after repair."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


@runtime_checkable
class LLMProvider(Protocol):
    """`timeout` (seconds) overrides `llm.timeout_seconds` for one call. It bounds each
    attempt of a plain call as a whole, and for a stream the wait for each event (`within`),
    not the whole answer, which MAX_CHARS_PER_TOKEN bounds instead; it is also handed to the
    SDK for each read. Failures raise LLMError."""

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        """One answer. With `response_schema` the provider is asked for JSON matching it
        (natively or via the prompt, per `structured_output_mode`) and `text` holds it."""
        ...

    def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
               tools: Sequence[ToolSpec] | None = None,
               timeout: float | None = None) -> AsyncGenerator[StreamEvent, None]:
        """Text deltas as the provider produces them, then one event with usage and the
        tool calls (if `tools` were offered and the model called any; arguments that are not
        a JSON object raise StructuredOutputError, as in `complete`). Closing the generator
        (aclose, or cancelling its consumer) closes the HTTP stream at once."""
        ...

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                        ) -> dict[str, Any]:
        """A JSON object validated against `schema`; StructuredOutputError otherwise."""
        ...

    async def aclose(self) -> None:
        """Release the provider's connections (at shutdown)."""
        ...


def as_message(message: MessageLike) -> Message:
    """Normalise a dict turn (OpenAI-like keys) to a Message."""
    if isinstance(message, Message):
        return message
    role = str(message.get("role", "user"))
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}")
    calls = tuple(c if isinstance(c, ToolCall) else
                  ToolCall(str(c["id"]), str(c["name"]), dict(c.get("arguments") or {}))
                  for c in message.get("tool_calls") or ())
    return Message(role=cast(Role, role), content=str(message.get("content") or ""),
                   tool_call_id=message.get("tool_call_id"), tool_calls=calls)


def as_messages(messages: Sequence[MessageLike]) -> list[Message]:
    return [as_message(m) for m in messages]
