"""Per-task model settings: the one place that maps `LLM_<TASK>_MODEL`, `_FALLBACK_MODEL`,
`_MAX_OUTPUT_TOKENS` and `_REASONING_EFFORT` (and the global `LLM_REASONING_EFFORT`) onto what
a provider sends. Tasks: the worker's `extraction`, `card`, `summary`, `dream`, and the
dialectic's levels (`dialectic_minimal` ... `dialectic_max`).

On the wire, an effort is OpenAI's `reasoning_effort` as given; on Anthropic a thinking budget
(`THINKING_BUDGET`), added to the output budget since thinking tokens count against
`max_tokens` (calls that offer tools or force a structured answer through a tool run without
thinking: the API refuses a forced tool with thinking, and tool rounds would have to carry
the thinking blocks back).
"""

from __future__ import annotations

from dataclasses import dataclass

from honcho_grpc.settings import LLMSettings

TASKS = ("extraction", "card", "summary", "dream", "dialectic_minimal", "dialectic_low",
         "dialectic_medium", "dialectic_high", "dialectic_max")

# Anthropic extended thinking: budget_tokens per effort (the API's minimum is 1024).
THINKING_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


@dataclass(frozen=True)
class TaskProfile:
    task: str
    model: str
    fallback_model: str
    max_output_tokens: int  # 0: the task's own default
    reasoning_effort: str  # "": none sent


def task_profile(settings: LLMSettings, task: str) -> TaskProfile:
    """The task's settings, each falling back to the global one."""
    model, fallback, budget, effort = settings.task_settings(task)
    return TaskProfile(task=task, model=model or settings.model,
                       fallback_model=fallback or settings.fallback_model,
                       max_output_tokens=budget,
                       reasoning_effort=effort or settings.reasoning_effort)


def for_task(settings: LLMSettings, task: str | None) -> LLMSettings:
    """The provider settings of a task: its model, fallback and effort in place of the
    global ones (the same settings when `task` is None)."""
    if task is None:
        return settings
    p = task_profile(settings, task)
    return settings.model_copy(update={"model": p.model, "fallback_model": p.fallback_model,
                                       "reasoning_effort": p.reasoning_effort})


def thinking_budget(effort: str) -> int:
    """Anthropic's thinking budget for an effort; 0: no thinking."""
    return THINKING_BUDGET.get(effort, 0)
