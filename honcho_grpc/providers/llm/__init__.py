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
