"""Input checks shared by the servicers. Each failure names the offending field."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format, struct_pb2

from honcho_grpc.errors import FieldViolation, InvalidArgument

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,512}$")
MAX_METADATA_KEYS = 100
MAX_METADATA_DEPTH = 5
MAX_METADATA_BYTES = 64 * 1024


class Checker:
    """Collects field violations and raises them together."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def id(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.fail(field, "is required")
            return
        if not ID_RE.match(value):
            self.fail(field, "must be 1-512 characters of letters, digits, '_' or '-'")

    def text(self, field: str, value: str, *, max_chars: int, min_chars: int = 1) -> None:
        if len(value) < min_chars:
            self.fail(field, "is required" if min_chars == 1 else f"needs >= {min_chars} chars")
        elif len(value) > max_chars:
            self.fail(field, f"is longer than {max_chars} characters")
        if "\x00" in value:
            self.fail(field, "must not contain NUL characters")

    def request_id(self, field: str, value: str) -> None:
        if not value:
            return
        try:
            uuid.UUID(value)
        except ValueError:
            self.fail(field, "must be a UUID")

    def range(self, field: str, value: float, low: float, high: float) -> None:
        if not low <= value <= high:
            self.fail(field, f"must be between {low:g} and {high:g}")

    def struct(self, field: str, value: struct_pb2.Struct | None) -> dict[str, Any]:
        """Validate caller metadata: <=100 keys, depth <=5, no NUL bytes, bounded size."""
        if value is None:
            return {}
        data = json_format.MessageToDict(value)
        if len(data) > MAX_METADATA_KEYS:
            self.fail(field, f"has more than {MAX_METADATA_KEYS} keys")
        problem = _struct_problem(data, 1)
        if problem:
            self.fail(field, problem)
        elif value.ByteSize() > MAX_METADATA_BYTES:
            self.fail(field, f"is larger than {MAX_METADATA_BYTES} bytes")
        return data

    def done(self) -> None:
        if self.violations:
            first = self.violations[0]
            raise InvalidArgument(
                message=f"{first.field}: {first.description}", violations=self.violations,
                metadata={"field": first.field},
            )


def _struct_problem(value: Any, depth: int) -> str | None:
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:
            return f"is nested deeper than {MAX_METADATA_DEPTH} levels"
        for key, item in value.items():
            if "\x00" in key:
                return "keys must not contain NUL characters"
            problem = _struct_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        if depth > MAX_METADATA_DEPTH:
            return f"is nested deeper than {MAX_METADATA_DEPTH} levels"
        for item in value:
            problem = _struct_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, str) and "\x00" in value:
        return "strings must not contain NUL characters"
    return None


@contextmanager
def checking() -> Iterator[Checker]:
    """`with checking() as c: c.id(...)` raises every violation at the end of the block."""
    checker = Checker()
    yield checker
    checker.done()


def page_size(field: str, value: int, default: int, maximum: int, c: Checker) -> int:
    if value < 0:
        c.fail(field, "must not be negative")
        return default
    return min(value or default, maximum)
