"""A CLIENT span around every call of a remote provider (GenAI semantic conventions: system,
requested model, token usage, finish reason; never the prompt or the answer). `build_llm`
wraps the remote providers in it; with telemetry off a span costs a no-op call."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from honcho_grpc.providers.llm.base import (
    Completion,
    LLMProvider,
    MessageLike,
    StreamEvent,
    ToolSpec,
)
from honcho_grpc.telemetry import LLMCall, llm_span


class TracedProvider:
    """Implements LLMProvider by delegating to `inner`; other attributes pass through."""

    def __init__(self, inner: LLMProvider, system: str, model: str) -> None:
        self.inner = inner
        self.system = system
        self.model = model

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _span(self, max_tokens: int, *, current: bool = True
              ) -> contextlib.AbstractContextManager[LLMCall]:
        return llm_span(f"chat {self.model}", system=self.system, operation="chat",
                        model=self.model, current=current,
                        attributes={"gen_ai.request.max_tokens": max_tokens})

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        with self._span(max_tokens) as call:
            done = await self.inner.complete(messages, max_tokens=max_tokens,
                                             response_schema=response_schema, tools=tools,
                                             timeout=timeout)
            call.usage(done.usage.input_tokens, done.usage.output_tokens)
            call.finished(done.finish_reason)
            return done

    async def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
                     tools: Sequence[ToolSpec] | None = None,
                     timeout: float | None = None,  # noqa: ASYNC109
                     ) -> AsyncGenerator[StreamEvent, None]:
        with self._span(max_tokens, current=False) as call:
            events = self.inner.stream(messages, max_tokens=max_tokens, tools=tools,
                                       timeout=timeout)
            try:
                async for event in events:
                    if event.usage is not None:
                        call.usage(event.usage.input_tokens, event.usage.output_tokens)
                    call.finished(event.finish_reason)
                    yield event
            finally:
                await events.aclose()  # a consumer that stops closes the HTTP stream at once

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                         ) -> dict[str, Any]:
        with self._span(max_tokens):
            return await self.inner.structured(messages, schema, max_tokens=max_tokens,
                                               timeout=timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()
