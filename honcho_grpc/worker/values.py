"""The values the worker's parts hand each other: what the reasoner is shown and returns,
the token bill of a task, the error that parks a task at once and the one a task expects.
A leaf module (it imports nothing of the worker), so the queue, the tasks and the reasoner
can all depend on it without depending on each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from honcho_grpc.model import ConclusionLevel, Fact


class PermanentError(Exception):
    """Retrying cannot help (bad payload, refused URL): park the rows as failed at once."""


class TransientError(RuntimeError):
    """A failure a task expects now and then (a remote end down or refusing): retried with
    backoff, logged in one line without a traceback."""


@dataclass
class Usage:
    """What a task cost in model tokens and provider calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.calls += other.calls

    def as_json(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "calls": self.calls}


@dataclass
class Conclusion:
    """A stored conclusion as the model sees it."""

    id: str
    content: str
    level: str
    created_at: str = ""


@dataclass
class Derived:
    """A conclusion a dream derived, with the ids of its premises."""

    content: str
    level: ConclusionLevel  # deductive | inductive | contradiction
    premise_ids: list[str]


@dataclass
class DreamPlan:
    derived: list[Derived] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (old id, newer id)


__all__ = ["Conclusion", "Derived", "DreamPlan", "Fact", "PermanentError", "Usage"]
