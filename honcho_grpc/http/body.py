"""JSON request bodies read as JSON is written (RFC 8259), not as Python's `json` reads it.

Python accepts `NaN`, `Infinity` and numbers that overflow to infinity, and `"\\ud800"`
escapes that decode to a lone surrogate, which no UTF-8 encoder (PostgreSQL's driver, the
tokenizer, the answer's own JSON) can write. The gRPC face never sees them: protobuf
strings must be valid UTF-8, and server/validate.py refuses non-finite numbers. Refusing them
here, where the body is parsed, gives every route the same 422 instead of a failure deep in
whatever first touches the value.

Every router of the HTTP face uses `StrictJsonRoute` (FastAPI's custom route class): a body
it refuses raises json.JSONDecodeError, which FastAPI answers with its 422 `json_invalid`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

# A \uD800-\uDFFF escape: only these can decode to a lone surrogate (raw bytes of one are
# not UTF-8, and the decoder refuses them first).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LARGEST_DOUBLE = 1.7976931348623157e308


class _Refused(ValueError):
    pass


def _constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number: numbers must be finite")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"{text[:40]} is too large: numbers must be finite doubles")
    return value


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # beyond Python's limit on digits in a conversion
        raise _Refused(f"an integer of {len(text)} digits is too large") from None
    if abs(value) > _LARGEST_DOUBLE:  # metadata keeps numbers as doubles (Struct)
        raise _Refused(f"an integer of {len(text)} digits is too large for a double")
    return value


def loads(body: bytes) -> Any:
    """The body's JSON value; json.JSONDecodeError for what RFC 8259 JSON cannot hold."""
    try:
        value = json.loads(body, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Refused as exc:
        raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
    if _SURROGATE_ESCAPE.search(body):
        where = _lone_surrogate(value, "body")
        if where is not None:
            raise json.JSONDecodeError(
                f"{where} holds a lone surrogate escape: text must be valid Unicode",
                body.decode("utf-8", "replace"), 0)
    return value


def _lone_surrogate(value: Any, path: str) -> str | None:
    """Where a string (or object key) that is not valid Unicode sits, if any; walked without
    recursion, as JSON may nest as deep as the parser allows."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return where
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
        elif isinstance(node, dict):
            for key, item in node.items():
                if not _encodable(key):
                    return f"a key of {where}"
                stack.append((item, f"{where}.{key}"))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handle(StrictJsonRequest(request.scope, request.receive))

        return strict
