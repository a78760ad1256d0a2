"""Structured output shared by the providers: the schema instruction for `json_object` mode
(and for providers without a native mode), turning an answer into a validated object, and
tool-call arguments (whole, or assembled from a stream's pieces) into objects."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from honcho_grpc.providers.llm.base import Message, StructuredOutputError, ToolCall
from honcho_grpc.providers.llm.jsonrepair import extract_json
from honcho_grpc.providers.llm.schema import validate

_NAME = re.compile(r"[^A-Za-z0-9_-]")


def schema_instruction(schema: dict[str, Any]) -> str:
    return ("Answer with a single JSON object and nothing else (no prose, no code fences). "
            "It must validate against this JSON Schema:\n" + json.dumps(schema))


def with_instruction(messages: list[Message], text: str) -> list[Message]:
    """Add `text` to the first system message, or lead with one: several chat templates of
    OpenAI-compatible servers accept only one system message, and only first."""
    if messages and messages[0].role == "system":
        first = Message("system", f"{messages[0].content}\n\n{text}")
        return [first, *messages[1:]]
    return [Message("system", text), *messages]


def schema_name(schema: dict[str, Any]) -> str:
    """A name for the schema as providers require it: [A-Za-z0-9_-], at most 64."""
    return _NAME.sub("_", str(schema.get("title") or "response"))[:64] or "response"


def parse_structured(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in a model's answer (repaired if sloppy), validated against `schema`."""
    try:
        value: dict[str, Any] = extract_json(text, dict)
    except ValueError as exc:
        raise StructuredOutputError("the model did not answer with a JSON object", text) from exc
    errors = validate(value, schema)
    if errors:
        raise StructuredOutputError("the model's JSON does not match the schema: "
                                    + "; ".join(errors[:5]), text)
    return value


def tool_arguments(text: str | None) -> dict[str, Any]:
    """A tool call's arguments; models sometimes emit sloppy JSON here too."""
    try:
        arguments: dict[str, Any] = extract_json(text or "{}", dict)
    except ValueError as exc:
        raise StructuredOutputError("tool call arguments are not a JSON object",
                                    text or "") from exc
    return arguments


@dataclass
class PartialToolCall:
    """A tool call arriving in pieces over a stream: `arguments` is JSON text so far."""

    id: str = ""
    name: str = ""
    arguments: str = ""


def assemble_tool_calls(partial: Mapping[int, PartialToolCall]) -> list[ToolCall]:
    """The streamed calls in the provider's order (its index); StructuredOutputError if any
    call's arguments are not a JSON object, as for a whole answer."""
    return [ToolCall(c.id, c.name, tool_arguments(c.arguments))
            for _, c in sorted(partial.items())]
