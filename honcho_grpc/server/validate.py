"""Input checks shared by the servicers. Each failure names the offending field.

`RequestGuard` is the wire-level part, applied to every RPC before any servicer runs: bytes
that do not decode as the request type, NUL characters in any string field, and non-finite
numbers inside `Struct` values are refused with INVALID_ARGUMENT (rather than surfacing as UNKNOWN,
INTERNAL or a database error further in).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from honcho_grpc.domain.scopes import MAX_ALLOWLIST, MAX_SCOPES_PER_READ
from honcho_grpc.errors import FieldViolation, InvalidArgument
from honcho_grpc.server.errors import MAX_FIELD_CHARS, MAX_VIOLATIONS, clip
from honcho_grpc.server.interceptors import before, wrap_handler

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,512}$")  # use .fullmatch: `$` also matches before "\n"
MAX_METADATA_KEYS = 100
MAX_METADATA_DEPTH = 5
MAX_METADATA_BYTES = 64 * 1024
MAX_INSTRUCTION_CHARS = 10_000  # custom instructions go into every extraction prompt
MAX_EVERY = 100_000  # summary intervals
EARLIEST_TIME = datetime.min.replace(tzinfo=UTC) + timedelta(microseconds=1)
LATEST_TIME = datetime.max.replace(tzinfo=UTC) - timedelta(microseconds=1)


class Checker:
    """Collects field violations and raises them together."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []
        self.dropped = 0

    def fail(self, field: str, description: str) -> None:
        if len(self.violations) >= MAX_VIOLATIONS:  # the status could not carry them all
            self.dropped += 1
            return
        self.violations.append(FieldViolation(field, description))

    def id(self, field: str, value: str, *, required: bool = True) -> None:
        if not value:
            if required:
                self.fail(field, "is required")
            return
        if not ID_RE.fullmatch(value):  # not .match: `$` would let a trailing newline in
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

    def time(self, field: str, value: datetime | None) -> datetime | None:
        """A caller's instant, in UTC (one without a zone is read as UTC). The first and last
        microsecond of datetime's range are refused: asyncpg stores those two as -infinity
        and infinity, which read back as naive datetimes that cannot be compared with any
        other time."""
        if value is None:
            return None
        try:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError):  # an offset that moves it out of years 1-9999
            utc = None
        if utc is None or not EARLIEST_TIME <= utc <= LATEST_TIME:
            self.fail(field, f"must lie between {EARLIEST_TIME.isoformat()} and "
                             f"{LATEST_TIME.isoformat()}")
            return None
        return utc

    def range(self, field: str, value: float, low: float, high: float) -> None:
        if not low <= value <= high:
            self.fail(field, f"must be between {low:g} and {high:g}")

    def struct(self, field: str, value: struct_pb2.Struct | None) -> dict[str, Any]:
        """Validate caller metadata: <=100 keys, depth <=5, no NUL bytes, bounded size."""
        if value is None or not value.fields:  # the common case, without the JSON detour
            return {}
        try:
            data = json_format.MessageToDict(value)
        except ValueError:  # NaN or Infinity: not JSON, and later conversions would fail too
            self.fail(field, "numbers must be finite")
            self.done()
            raise
        if len(data) > MAX_METADATA_KEYS:
            self.fail(field, f"has more than {MAX_METADATA_KEYS} keys")
        problem = _struct_problem(data, 1)
        if problem:
            self.fail(field, problem)
        elif value.ByteSize() > MAX_METADATA_BYTES:
            self.fail(field, f"is larger than {MAX_METADATA_BYTES} bytes")
        return data

    def configuration(self, field: str, value: Message) -> None:
        """A Configuration or MessageConfiguration within the ranges the proto documents."""
        if value.HasField("reasoning"):
            reasoning = value.reasoning  # type: ignore[attr-defined]
            if reasoning.HasField("custom_instructions"):
                self.text(f"{field}.reasoning.custom_instructions",
                          reasoning.custom_instructions, max_chars=MAX_INSTRUCTION_CHARS,
                          min_chars=0)
        if "summary" not in value.DESCRIPTOR.fields_by_name or not value.HasField("summary"):
            return
        summary = value.summary  # type: ignore[attr-defined]
        short = long = None
        if summary.HasField("messages_per_short_summary"):
            short = summary.messages_per_short_summary
            self.range(f"{field}.summary.messages_per_short_summary", short, 10, MAX_EVERY)
        if summary.HasField("messages_per_long_summary"):
            long = summary.messages_per_long_summary
            self.range(f"{field}.summary.messages_per_long_summary", long, 20, MAX_EVERY)
        if short is not None and long is not None and long <= short:
            self.fail(f"{field}.summary.messages_per_long_summary",
                      "must be greater than messages_per_short_summary")

    def done(self) -> None:
        if self.violations:
            first = self.violations[0]
            more = f" (and {len(self.violations) - 1 + self.dropped} more)" if (
                len(self.violations) > 1 or self.dropped) else ""
            raise InvalidArgument(
                message=f"{clip(first.field, MAX_FIELD_CHARS)}: {first.description}{more}",
                violations=self.violations, metadata={"field": first.field},
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


# Honcho stores a scope as a peer named "scope.<id>": an id leaves room for the prefix.
MAX_SCOPE_ID_CHARS = 512 - len("scope.")


def scope_id(c: Checker, field: str, value: str, *, required: bool = True) -> None:
    c.id(field, value, required=required)
    if len(value) > MAX_SCOPE_ID_CHARS:
        c.fail(field, f"must be at most {MAX_SCOPE_ID_CHARS} characters")


def id_list(c: Checker, field: str, values: Sequence[str], maximum: int, *,
            scopes: bool = False) -> None:
    """A list of ids (scope ids when `scopes`) of at most `maximum`, each checked."""
    if len(values) > maximum:
        c.fail(field, f"names more than {maximum} ids")
    for i, value in enumerate(values):
        if scopes:
            scope_id(c, f"{field}[{i}]", value)
        else:
            c.id(f"{field}[{i}]", value)


def boundary_options(c: Checker, prefix: str, scope_ids: Sequence[str],
                     session_ids: Sequence[str], session_id: str) -> None:
    """`scope_ids` (1-100 scopes), `session_ids` (an allowlist of 1-1000) and `session_id`:
    at most one of them (domain/scopes.py)."""
    id_list(c, f"{prefix}scope_ids", scope_ids, MAX_SCOPES_PER_READ, scopes=True)
    id_list(c, f"{prefix}session_ids", session_ids, MAX_ALLOWLIST)
    given = [name for name, value in (("scope_ids", scope_ids), ("session_ids", session_ids),
                                      ("session_id", session_id)) if value]
    if len(given) > 1:
        c.fail(f"{prefix}{given[1]}", f"cannot be combined with {given[0]}")


def page_size(field: str, value: int, default: int, maximum: int, c: Checker) -> int:
    if value < 0:
        c.fail(field, "must not be negative")
        return default
    return min(value or default, maximum)


# --- wire-level guard -----------------------------------------------------------------------

UNDECODABLE = object()  # what the guarded deserializer returns for bytes it cannot parse
# U+0000 is a 0x00 byte in UTF-8; a double is non-finite exactly when its exponent bits are all
# ones, i.e. (little-endian on the wire) byte 6 is 0xF0-0xFF and byte 7 is 0x7F or 0xFF. A NaN
# may have no zero byte at all (any payload), so looking for zeros alone lets it through.
_MAYBE_PROBLEM = re.compile(rb"\x00|[\xf0-\xff][\x7f\xff]")
_STRUCT_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value",
                           "google.protobuf.ListValue"})


def _guard_deserializer(deserializer: Callable[[bytes], Any] | None
                        ) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            request = deserializer(raw)
        except Exception:  # DecodeError (corrupt wire data, bad UTF-8, nesting too deep)
            return UNDECODABLE
        # Without a NUL byte or the two top bytes of a non-finite double on the wire, the walk
        # over every field (a few percent of a 100-message write) cannot find anything.
        if _MAYBE_PROBLEM.search(raw) is not None and isinstance(request, Message):
            problem = wire_problem(request)
            if problem is not None:
                return WireProblem(problem)
        return request

    return deserialize


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _value_problem(value: struct_pb2.Value, path: str) -> FieldViolation | None:
    kind = value.WhichOneof("kind")
    if kind == "number_value" and not math.isfinite(value.number_value):
        return FieldViolation(path, "numbers must be finite")
    if kind == "struct_value":
        return _struct_value_problem(value.struct_value, path)
    if kind == "list_value":
        for i, item in enumerate(value.list_value.values):
            problem = _value_problem(item, f"{path}[{i}]")
            if problem:
                return problem
    return None


def _struct_value_problem(struct: struct_pb2.Struct, path: str) -> FieldViolation | None:
    # NULs inside a Struct are left to Checker.struct and the filter compiler, which name
    # them after their own conventions; non-finite numbers cannot reach them (no JSON form).
    for key, item in struct.fields.items():
        problem = _value_problem(item, _path(path, key))
        if problem:
            return problem
    return None


def wire_problem(message: Message, prefix: str = "") -> FieldViolation | None:
    """The first NUL in a string field or non-finite number in a Struct in `message`."""
    full_name = message.DESCRIPTOR.full_name
    if full_name == "google.protobuf.Struct":
        return _struct_value_problem(message, prefix)  # type: ignore[arg-type]
    if full_name == "google.protobuf.Value":
        return _value_problem(message, prefix)  # type: ignore[arg-type]
    if full_name == "google.protobuf.ListValue":
        return _value_problem(struct_pb2.Value(list_value=message), prefix)  # type: ignore[arg-type]
    for fd, value in message.ListFields():
        path = _path(prefix, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            problem = _map_problem(fd.message_type, value, path)
        elif fd.is_repeated:
            problem = None
            for i, item in enumerate(value):
                problem = _single_problem(fd, item, f"{path}[{i}]")
                if problem:
                    break
        else:
            problem = _single_problem(fd, value, path)
        if problem:
            return problem
    return None


def _single_problem(fd: FieldDescriptor, value: Any, path: str) -> FieldViolation | None:
    if fd.type == FieldDescriptor.TYPE_STRING and "\x00" in value:
        return FieldViolation(path, "must not contain NUL characters")
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return wire_problem(value, path)
    return None


def _map_problem(entry: Descriptor, mapping: Any, path: str) -> FieldViolation | None:
    key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for key, item in mapping.items():
        if key_fd.type == FieldDescriptor.TYPE_STRING and "\x00" in key:
            return FieldViolation(path, "keys must not contain NUL characters")
        problem = _single_problem(value_fd, item, f"{path}[{key!r}]")
        if problem:
            return problem
    return None


@dataclass(frozen=True)
class WireProblem:
    """What the guarded deserializer returns for a request with a wire_problem."""

    violation: FieldViolation


def check_wire(request: Any) -> None:
    """Raise INVALID_ARGUMENT for an undecodable request or a wire_problem in it (both found
    by the guarded deserializer)."""
    if request is UNDECODABLE:
        raise InvalidArgument(message="the request could not be decoded",
                              reason="MALFORMED_REQUEST")
    if isinstance(request, WireProblem):
        c = Checker()
        c.fail(request.violation.field, request.violation.description)
        c.done()


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        check_wire(request)
        yield request


async def _check_message(request: Any) -> Any:
    check_wire(request)
    return request


async def _check_messages(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    return _checked(requests)


_CHECK_WIRE = before(_check_message, _check_messages)


class RequestGuard(grpc.aio.ServerInterceptor):
    """Applies check_wire to every request (each message of a client stream). Register it
    after the ErrorInterceptor, so that its refusals become rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return wrap_handler(handler, _CHECK_WIRE,
                            _guard_deserializer(handler.request_deserializer))
