"""The LLM provider layer: one interface (`LLMProvider`), three implementations.

- `openai`: the official `openai` SDK; OpenAI or any OpenAI-compatible base URL.
- `anthropic`: the official `anthropic` SDK.
- `local`: offline and deterministic (see `local`), the default. Callers use it as they use
  the others: it reads the same messages, schemas and tools and answers from them.

Remote providers retry retryable failures themselves (the SDKs' retries are off), give the
last attempt to the fallback model, and close HTTP streams as soon as their consumer stops.
Their modules are imported only when configured: the two SDKs take ~3 s and tens of MB to
import, which a `local` deployment should not pay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from honcho_grpc.providers.llm.base import (
    Completion,
    LLMError,
    LLMProvider,
    Message,
    MessageLike,
    StreamEvent,
    StructuredOutputError,
    ToolCall,
    ToolSpec,
    Usage,
)
from honcho_grpc.providers.llm.local import LocalProvider
from honcho_grpc.providers.llm.retry import Backoff
from honcho_grpc.settings import LLMSettings

__all__ = [
    "Backoff",
    "Completion",
    "LLMError",
    "LLMProvider",
    "LocalProvider",
    "Message",
    "MessageLike",
    "StreamEvent",
    "StructuredOutputError",
    "TaskRouter",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "build_llm",
]


def build_llm(settings: LLMSettings, *, backoff: Backoff | None = None,
              task: str | None = None) -> LLMProvider:
    """The configured provider, for one task when `task` names one (its model, fallback
    and effort: providers/llm/tasks.py). `backoff` tunes retry waits (tests make them
    short)."""
    from honcho_grpc.providers.llm.tasks import for_task
    from honcho_grpc.providers.llm.traced import TracedProvider

    settings = for_task(settings, task)
    if settings.provider == "openai":
        from honcho_grpc.providers.llm.openai_chat import OpenAIProvider

        return TracedProvider(OpenAIProvider(settings, backoff=backoff), "openai",
                              settings.model)
    if settings.provider == "anthropic":
        from honcho_grpc.providers.llm.anthropic_messages import AnthropicProvider

        return TracedProvider(AnthropicProvider(settings, backoff=backoff), "anthropic",
                              settings.model)
    return LocalProvider()


class TaskRouter:
    """The configured provider for each task (providers/llm/tasks.py): `for_task` gives the
    provider of a task (built once; the default one when the task changes nothing), and
    `budget` its output budget. As an LLMProvider itself it is the default provider, so
    callers that know no task use it as before."""

    def __init__(self, settings: LLMSettings, *, backoff: Backoff | None = None) -> None:
        self.settings = settings
        self.backoff = backoff
        self.default = build_llm(settings, backoff=backoff)
        self._by_task: dict[str, LLMProvider] = {}

    def for_task(self, task: str) -> LLMProvider:
        from honcho_grpc.providers.llm.tasks import for_task

        if task not in self._by_task:
            own = for_task(self.settings, task)
            same = (own.model, own.fallback_model, own.reasoning_effort) == (
                self.settings.model, self.settings.fallback_model,
                self.settings.reasoning_effort)
            self._by_task[task] = self.default if same or self.settings.provider == "local" \
                else build_llm(self.settings, backoff=self.backoff, task=task)
        return self._by_task[task]

    def budget(self, task: str, default: int) -> int:
        """The task's output budget: its own setting, else `default`."""
        from honcho_grpc.providers.llm.tasks import task_profile

        return task_profile(self.settings, task).max_output_tokens or default

    def model(self, task: str) -> str:
        from honcho_grpc.providers.llm.tasks import task_profile

        return task_profile(self.settings, task).model

    async def complete(self, messages: Sequence[MessageLike], *, max_tokens: int,
                       response_schema: dict[str, Any] | None = None,
                       tools: Sequence[ToolSpec] | None = None,
                       timeout: float | None = None) -> Completion:  # noqa: ASYNC109
        return await self.default.complete(messages, max_tokens=max_tokens,
                                           response_schema=response_schema, tools=tools,
                                           timeout=timeout)

    def stream(self, messages: Sequence[MessageLike], *, max_tokens: int,
               tools: Sequence[ToolSpec] | None = None,
               timeout: float | None = None) -> AsyncGenerator[StreamEvent, None]:
        return self.default.stream(messages, max_tokens=max_tokens, tools=tools,
                                   timeout=timeout)

    async def structured(self, messages: Sequence[MessageLike], schema: dict[str, Any], *,
                         max_tokens: int,
                         timeout: float | None = None,  # noqa: ASYNC109
                         ) -> dict[str, Any]:
        return await self.default.structured(messages, schema, max_tokens=max_tokens,
                                             timeout=timeout)

    async def aclose(self) -> None:
        for provider in {id(p): p for p in (self.default, *self._by_task.values())}.values():
            await provider.aclose()
