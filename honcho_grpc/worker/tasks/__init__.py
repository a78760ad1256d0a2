"""Task handlers. A handler reads what it needs and calls the model and the embedder outside
any transaction, then returns an `apply` step that the runner executes inside the fenced
transaction that also marks the rows completed: the results and the completion commit
together or not at all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from honcho_grpc.settings import Settings
from honcho_grpc.worker.db import Conn, Pool
from honcho_grpc.worker.queue import Job
from honcho_grpc.worker.values import PermanentError as PermanentError
from honcho_grpc.worker.values import Usage

Apply: TypeAlias = Callable[[Conn], Awaitable[None]]


@dataclass
class TaskContext:
    pool: Pool
    settings: Settings
    reasoner: Any  # honcho_grpc.worker.reasoning.Reasoner
    embedder: Any  # honcho_grpc.providers.embeddings.Embedder


@dataclass
class Result:
    usage: Usage = field(default_factory=Usage)
    apply: Apply | None = None


Handler: TypeAlias = Callable[[TaskContext, list[Job]], Awaitable[Result]]


async def noop(ctx: TaskContext, jobs: list[Job]) -> Result:
    """Does nothing: measures the queue's own cost per task (bench/queue.py)."""
    return Result()


def default_handlers() -> dict[str, Handler]:
    from honcho_grpc.worker.tasks import dream, representation, summary, webhook

    return {
        "representation": representation.run,
        "summary": summary.run,
        "dream": dream.run,
        "webhook": webhook.run,
        "noop": noop,
    }
