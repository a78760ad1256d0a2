"""Lenient JSON extraction for models that do not answer in clean JSON.

Handles what weak or prompt-only (json_object mode) models produce: code fences, prose before
or after the value, single-quoted strings, Python literals (True/False/None), unquoted keys,
trailing commas, // and /* */ comments, and output cut off by the token limit (open strings and
brackets are closed). It does not guess at anything else: such text is rejected.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from typing import Any

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERALS = {"true": "true", "false": "false", "null": "null",
             "True": "true", "False": "false", "None": "null"}
_CLOSERS = {"{": "}", "[": "]"}
MAX_CANDIDATES = 50  # bracket positions tried; bounds the work on long prose


def extract_json(text: str, want: type | tuple[type, ...] = object) -> Any:
    """The first JSON value of type `want` in `text`; ValueError if there is none."""
    body = _unfence(text).strip()
    with suppress(ValueError):
        value = json.loads(body)
        if isinstance(value, want):
            return value
    starts = [i for i, ch in enumerate(body) if ch in _CLOSERS][:MAX_CANDIDATES]
    for start in starts:
        with suppress(ValueError):
            value = json.loads(_normalise(body, start))
            if isinstance(value, want):
                return value
    raise ValueError("no JSON value found in the text")


def _unfence(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text


def _normalise(text: str, start: int) -> str:
    """Rewrite the JSON-ish value starting at `start` as strict JSON, stopping at its end."""
    out: list[str] = []
    stack: list[str] = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            piece, i = _string(text, i)
            out.append(piece)
            continue
        if text.startswith("//", i) or text.startswith("/*", i):
            i = _skip_comment(text, i)
            continue
        if ch.isalpha() or ch == "_":
            piece, i = _word(text, i)
            out.append(piece)
            continue
        if ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]":
            _drop_trailing_comma(out)
            if not stack or stack.pop() != ch:
                raise ValueError("mismatched bracket")
            if not stack:
                return "".join([*out, ch])
        out.append(ch)
        i += 1
    # Cut off by a token limit: close whatever is still open.
    _drop_trailing_comma(out)
    return "".join(out + stack[::-1])


def _string(text: str, i: int) -> tuple[str, int]:
    """A quoted string (either quote) as a JSON string literal, and the index after it."""
    quote, chars = text[i], []
    i += 1
    while i < len(text) and text[i] != quote:
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            chars.append(nxt if nxt == "'" else ch + nxt)  # \' is not a JSON escape
            i += 2
            continue
        chars.append({'"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, ch))
        i += 1
    return '"' + "".join(chars) + '"', i + 1


def _word(text: str, i: int) -> tuple[str, int]:
    """A literal (Python spellings mapped to JSON) or an unquoted key, quoted."""
    match = _WORD.match(text, i)
    assert match is not None  # the caller saw a letter or underscore here
    word, end = match.group(0), match.end()
    if word in _LITERALS:
        return _LITERALS[word], end
    if text[end:].lstrip().startswith(":"):
        return json.dumps(word), end
    raise ValueError(f"bare word {word!r} in JSON")


def _skip_comment(text: str, i: int) -> int:
    if text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    end = text.find("*/", i + 2)
    return len(text) if end < 0 else end + 2


def _drop_trailing_comma(out: list[str]) -> None:
    j = len(out) - 1
    while j >= 0 and out[j].isspace():
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]
