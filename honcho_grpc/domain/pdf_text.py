"""The text of a PDF, in a child process of its own (`python -m honcho_grpc.domain.pdf_text
MAX_PAGES MEMORY_BYTES CPU_SECONDS`, the PDF on stdin, JSON on stdout).

A PDF is a container of compressed streams: a small upload can inflate to gigabytes or keep
a parser busy for minutes. The child caps its own address space and CPU time before it reads
a byte, so the worst a hostile file can do is end this process; the server stays untouched
and answers with the limit that was hit (honcho_grpc/domain/files.py).
"""

from __future__ import annotations

import io
import json
import resource
import sys


def _limit(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _text(data: bytes, max_pages: int) -> dict[str, object]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > max_pages:
            return {"error": "pages", "pages": len(reader.pages)}
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except MemoryError:  # our cap on the whole process
        return {"error": "memory"}
    except LimitReachedError:  # pypdf's own cap on one inflated stream
        return {"error": "stream"}
    except Exception:  # whatever a malformed file makes the parser raise
        return {"error": "unreadable"}
    return {"text": text}


def main() -> None:
    max_pages, memory_bytes, cpu_seconds = (int(a) for a in sys.argv[1:4])
    data = sys.stdin.buffer.read()
    _limit(memory_bytes, cpu_seconds)
    try:
        out = _text(data, max_pages)
    except MemoryError:
        out = {"error": "memory"}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
