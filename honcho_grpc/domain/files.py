"""Turning uploaded files into message-sized text chunks, within bounds a hostile file
cannot push: parsing runs off the event loop (text and JSON in a thread, PDFs in a child
process with capped memory and CPU, honcho_grpc/domain/pdf_text.py), JSON nesting and the
extracted text are bounded, and every refusal is INVALID_ARGUMENT naming the limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime

from honcho_grpc.domain.nesting import json_depth
from honcho_grpc.errors import InvalidArgument
from honcho_grpc.model import Json

SUPPORTED = ("text/", "application/json", "application/pdf")
MAX_FILENAME_CHARS = 255
ZLIB_MAX_OUTPUT_MB = 75  # pypdf's default cap on one inflated stream (pypdf.filters)
FIELD = "chunk"


@dataclass(frozen=True)
class FileLimits:
    max_text_chars: int = 5_000_000  # text extracted from one file (after decompression)
    max_json_depth: int = 64
    max_pdf_pages: int = 2_000
    parse_seconds: float = 10.0  # wall clock for one PDF
    pdf_memory_bytes: int = 768 * 1024 * 1024  # the PDF child's whole address space


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded file: where its messages go (domain/messages.upload_file), who wrote it,
    and what it was."""

    workspace_id: str
    session_id: str
    peer_id: str
    filename: str
    content_type: str
    size: int
    metadata: Json
    configuration: Json
    created_at: datetime | None


async def text_chunks(data: bytes, content_type: str, max_chars: int,
                      limits: FileLimits = FileLimits()) -> list[str]:
    """The file's text in message-sized chunks (none when it holds no text)."""
    return split_text(await extract_text(data, content_type, limits), max_chars)


def _refuse(description: str, reason: str) -> InvalidArgument:
    return InvalidArgument.field(FIELD, description, reason=reason)


async def extract_text(data: bytes, content_type: str,
                       limits: FileLimits = FileLimits()) -> str:
    """Text of a text, JSON or PDF file."""
    if content_type == "application/pdf":
        text = await _pdf_text(data, limits)
    else:
        text = await asyncio.to_thread(_plain_text, data, content_type, limits)
    if len(text) > limits.max_text_chars:
        raise _refuse(f"the file holds more than {limits.max_text_chars} characters of text",
                      "FILE_TEXT_TOO_LARGE")
    return text


def _plain_text(data: bytes, content_type: str, limits: FileLimits) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse("file is not valid UTF-8 text", "FILE_NOT_UTF8") from exc
    if content_type == "application/json":
        text = _json_text(text, limits)
    return text.replace("\x00", "")


def _json_text(text: str, limits: FileLimits) -> str:
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise _too_deep(limits) from exc
    except ValueError as exc:
        raise _refuse("file is not valid JSON", "FILE_NOT_JSON") from exc
    if json_depth(value, stop_after=limits.max_json_depth) > limits.max_json_depth:
        raise _too_deep(limits)
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    try:
        pretty.encode("utf-8")
    except UnicodeEncodeError as exc:  # "\ud800": an escape of half a character
        raise _refuse("file holds a lone surrogate escape (e.g. \\ud800), which is not text",
                      "FILE_NOT_TEXT") from exc
    return pretty


def _too_deep(limits: FileLimits) -> InvalidArgument:
    return _refuse(f"JSON nested deeper than {limits.max_json_depth} levels",
                   "FILE_JSON_TOO_DEEP")


async def _pdf_text(data: bytes, limits: FileLimits) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "honcho_grpc.domain.pdf_text", str(limits.max_pdf_pages),
        str(limits.pdf_memory_bytes), str(int(limits.parse_seconds) + 1),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), limits.parse_seconds)
    except TimeoutError:
        raise _refuse(f"the PDF took longer than {limits.parse_seconds:g} s to read",
                      "FILE_PARSE_TIMEOUT") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    try:
        result = json.loads(out)
    except ValueError:
        result = {"error": "memory"}  # killed by its limits before it could answer
    if "text" in result:
        return str(result["text"])
    if result.get("error") == "pages":
        raise _refuse(f"the PDF has more than {limits.max_pdf_pages} pages", "FILE_TOO_MANY_PAGES")
    if result.get("error") == "stream":
        raise _refuse("a stream of the PDF inflates beyond the reader's limit "
                      f"({ZLIB_MAX_OUTPUT_MB} MB)", "FILE_TOO_LARGE_INFLATED")
    if result.get("error") == "memory":
        mib = limits.pdf_memory_bytes // (1024 * 1024)
        raise _refuse(f"the PDF inflates beyond {mib} MiB when read", "FILE_TOO_LARGE_INFLATED")
    raise _refuse("file is not a readable PDF", "FILE_NOT_PDF")


def check_filename(filename: str) -> None:
    if len(filename) > MAX_FILENAME_CHARS:
        raise InvalidArgument.field("header.filename",
                                    f"is longer than {MAX_FILENAME_CHARS} characters")


def check_content_type(content_type: str) -> None:
    if not any(content_type == s or (s.endswith("/") and content_type.startswith(s))
               for s in SUPPORTED):
        raise InvalidArgument.field(
            "header.content_type",
            f"unsupported content type {content_type!r}; use text/*, application/json or "
            "application/pdf", reason="UNSUPPORTED_CONTENT_TYPE")


def split_text(text: str, max_chars: int) -> list[str]:
    """Chunks of at most `max_chars`, cut at the last paragraph, line, sentence or word break
    in the second half of the window when there is one."""
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max_chars
        for sep in ("\n\n", "\n", ". ", " "):
            pos = window.rfind(sep)
            if pos >= max_chars // 2:
                cut = pos + len(sep)
                break
        chunks.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        chunks.append(rest)
    return chunks
