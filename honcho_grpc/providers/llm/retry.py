"""Our retry policy for provider calls (the SDKs' own retries are switched off, so there is
one policy, one count and one place that picks the fallback model).

Retryable: HTTP 408, 409, 429 and 5xx (Anthropic's 529 "overloaded" included), connection
errors and timeouts. Waits grow exponentially (with jitter, so many workers do not retry in
step) and honour a server's Retry-After up to the cap. The fallback model, when configured,
takes the last attempt: the primary may be down or overloaded for good.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from honcho_grpc.providers.llm.base import LLMError
from honcho_grpc.settings import LLMSettings

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 429})
# An error event inside a stream arrives with the stream's 200: its type says what it is.
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error",
                                   "timeout_error", "server_error"})


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 8.0


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def error_type(exc: BaseException) -> str:
    """The `type` of the error body an SDK error carries (`{"error": {"type": ...}}`)."""
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else ""


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it did."""
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers.get(name)) / divisor
        except (TypeError, ValueError):
            continue
    return None


class Retrier:
    """Runs one provider call with retries. `api_error` is the SDK's base error type (what
    gets turned into LLMError), `connection_error` its transport error (timeouts included)."""

    def __init__(self, settings: LLMSettings, backoff: Backoff,
                 api_error: type[Exception], connection_error: type[Exception]) -> None:
        self.model = settings.model
        self.fallback = settings.fallback_model
        self.attempts = max(0, settings.max_retries) + 1
        self.backoff = backoff
        self.api_error = api_error
        self.connection_error = connection_error

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, TimeoutError):  # our bound on a whole attempt or stream event
            return True
        status = status_of(exc)
        if status is not None and status < 400:
            return error_type(exc) in RETRYABLE_ERROR_TYPES
        if status is not None:
            return status in RETRYABLE_STATUS or status >= 500
        return isinstance(exc, self.connection_error)

    def model_for(self, attempt: int) -> str:
        last = attempt == self.attempts and self.attempts > 1
        return self.fallback if last and self.fallback else self.model

    def _wait(self, state: RetryCallState) -> float:
        grown = self.backoff.initial * 2.0 ** (state.attempt_number - 1)
        jittered = grown * (0.5 + random.random() / 2)
        exc = state.outcome.exception() if state.outcome else None
        return min(self.backoff.maximum, max(jittered, retry_after(exc) or 0.0))

    async def run(self, call: Callable[[str], Awaitable[T]]) -> T:
        """`call(model)` until it succeeds or retries run out; failures become LLMError."""
        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts), wait=self._wait,
                                 retry=retry_if_exception(self.retryable), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await call(self.model_for(attempt.retry_state.attempt_number))
        except (self.api_error, TimeoutError) as exc:
            raise self.error(exc) from exc
        raise AssertionError("unreachable: tenacity returns or reraises")

    def error(self, exc: BaseException) -> LLMError:
        if isinstance(exc, TimeoutError):
            return LLMError("the provider did not answer in time (LLM_TIMEOUT_SECONDS)",
                            retryable=True)
        return LLMError(f"{type(exc).__name__}: {exc}", retryable=self.retryable(exc),
                        status_code=status_of(exc))

