"""Turning uploaded files into message-sized text chunks."""

from __future__ import annotations

import io
import json

from honcho_grpc.errors import InvalidArgument

SUPPORTED = ("text/", "application/json", "application/pdf")


def extract_text(data: bytes, content_type: str) -> str:
    """Text of a text, JSON or PDF file."""
    if content_type == "application/pdf":
        return _pdf_text(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.field("chunk", "file is not valid UTF-8 text",
                                    reason="FILE_NOT_UTF8") from exc
    if content_type == "application/json":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError as exc:
            raise InvalidArgument.field("chunk", "file is not valid JSON",
                                        reason="FILE_NOT_JSON") from exc
    return text.replace("\x00", "")


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InvalidArgument.field("chunk", "file is not a readable PDF",
                                    reason="FILE_NOT_PDF") from exc


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
