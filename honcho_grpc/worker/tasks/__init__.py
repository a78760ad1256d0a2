"""Task handlers. A handler reads its typed payload and what it needs, calls the model and the
embedder outside any transaction, then returns an `apply` step -- calls into the domain --
that the runner executes inside the fenced transaction that also marks the rows completed
(honcho_grpc/domain/queue.py complete): the results and the completion commit together or
not at all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypeVar

import asyncpg

from honcho_grpc.domain.dialectic_tools import Toolbox
from honcho_grpc.domain.queue import Apply
from honcho_grpc.providers.embeddings import Embedder
from honcho_grpc.settings import Settings
from honcho_grpc.work_units import MalformedWorkUnit, Payload, TaskType, parse_payload
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.values import Conclusion, DreamPlan, Fact, Usage
from honcho_grpc.worker.values import PermanentError as PermanentError
from honcho_grpc.worker.values import TransientError as TransientError


class Reasoning(Protocol):
    """What the tasks ask of the language model (honcho_grpc/worker/reasoning.py Reasoner);
    each answer comes with its token bill."""

    def derive_facts(self, targets: list[str], lines: list[str],
                     custom_instructions: str = "", *,
                     earlier: list[str] | None = None) -> Awaitable[tuple[list[Fact], Usage]]:
        ...

    def summarize(self, kind: str, previous: str, lines: list[str],
                  max_words: int) -> Awaitable[tuple[str, Usage]]: ...

    def update_card(self, observed: str, card: list[str],
                    facts: list[str]) -> Awaitable[tuple[list[str], Usage]]: ...

    def dream(self, observed: str, conclusions: list[Conclusion], *,
              card: list[str] | None = None, messages: list[str] | None = None,
              toolbox: Toolbox | None = None,
              rounds: int = 0) -> Awaitable[tuple[DreamPlan, Usage]]: ...


@dataclass
class TaskContext:
    db: asyncpg.Pool  # the store's pool: every read and write of a task
    settings: Settings
    reasoner: Reasoning
    embedder: Embedder


@dataclass
class Result:
    usage: Usage = field(default_factory=Usage)
    apply: Apply | None = None


Handler: TypeAlias = Callable[[TaskContext, list[Job]], Awaitable[Result]]
P = TypeVar("P", bound=Payload)


def payloads(jobs: list[Job], kind: type[P]) -> list[P]:
    """The jobs' typed payloads; PermanentError when one does not fit the protocol."""
    try:
        parsed = [parse_payload(j.task_type, j.payload) for j in jobs]
    except MalformedWorkUnit as exc:
        raise PermanentError(str(exc)) from exc
    if not all(isinstance(p, kind) for p in parsed):
        raise PermanentError(f"{jobs[0].task_type} rows are not {kind.__name__}s")
    return [p for p in parsed if isinstance(p, kind)]


async def noop(ctx: TaskContext, jobs: list[Job]) -> Result:
    """Does nothing: measures the queue's own cost per task (bench/queue.py)."""
    return Result()


def default_handlers() -> dict[str, Handler]:
    from honcho_grpc.worker.tasks import card, dream, representation, summary, webhook

    return {
        TaskType.REPRESENTATION: representation.run,
        TaskType.SUMMARY: summary.run,
        TaskType.DREAM: dream.run,
        TaskType.CARD: card.run,
        TaskType.WEBHOOK: webhook.run,
        TaskType.NOOP: noop,
    }
