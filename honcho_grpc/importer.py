"""`honcho-grpc import`: load a conversation export into a running server through the
ImportMessages stream (one transaction: all or nothing), with a progress bar and a summary.

Accepted files: a JSON array of message objects, or JSON Lines (one object per line). Each
object needs an author — `peer_id`, `peer`, `author`, `speaker`, `name` or `role` — and a text —
`content` or `text`; optional: `created_at` (ISO 8601 or seconds since the epoch),
`metadata` (an object) and `session_id` (else `--session`). Author ids are made valid
(`Caroline Smith` -> `Caroline_Smith`).

    chat.jsonl:  {"role": "user", "content": "I moved to Lisbon", "created_at": 1700000000}
                 {"author": "Ana", "text": "Welcome!", "metadata": {"source": "slack"}}
    chat.json:   [{"peer_id": "ana", "content": "hi", "created_at": "2024-05-01T09:30:00Z"}]

Invalid records are reported by line (JSON Lines) or item number (arrays) with the reason;
nothing is imported unless `--skip-invalid` is given.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc

from honcho_grpc.server.validate import ID_RE

AUTHOR_KEYS = ("peer_id", "peer", "author", "speaker", "name", "role")
TEXT_KEYS = ("content", "text")
CHUNK = 100  # messages per stream message (the server takes up to MAX_CHUNK)
MAX_CHUNK = 1000


@dataclass
class Parsed:
    messages: list[tuple[str, message_pb2.MessageInput]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _records(text: str) -> Iterator[tuple[str, Any]]:
    """(where, decoded object) for a JSON array ("item N") or JSON Lines ("line N"); what
    does not decode comes as the exception."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            yield f"line {getattr(exc, 'lineno', 1)}", exc
            return
        yield from ((f"item {i}", item) for i, item in enumerate(items, 1))
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"line {number}", json.loads(line)
            except ValueError as exc:
                yield f"line {number}", exc


def _peer_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", value.strip()).strip("_")[:512]


def _time(value: Any) -> timestamp_pb2.Timestamp:
    when = (datetime.fromtimestamp(float(value), UTC) if isinstance(value, int | float)
            else datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    return out


def _message(item: Any, default_session: str) -> tuple[str, message_pb2.MessageInput]:
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    author = next((item[k] for k in AUTHOR_KEYS if isinstance(item.get(k), str)), None)
    text = next((item[k] for k in TEXT_KEYS if isinstance(item.get(k), str)), None)
    if not author or not _peer_id(author):
        raise ValueError(f"no author (one of {', '.join(AUTHOR_KEYS)})")
    if not text:
        raise ValueError("no text (content or text)")
    session = str(item.get("session_id") or default_session)
    if not ID_RE.fullmatch(session):
        raise ValueError(f"session id {session!r} is not valid")
    message = message_pb2.MessageInput(peer_id=_peer_id(author), content=text)
    if item.get("metadata") is not None:
        if not isinstance(item["metadata"], dict):
            raise ValueError("metadata is not an object")
        metadata = struct_pb2.Struct()
        metadata.update(item["metadata"])
        message.metadata.CopyFrom(metadata)
    if item.get("created_at") is not None:
        try:
            message.create_time.CopyFrom(_time(item["created_at"]))
        except (ValueError, OverflowError, OSError) as exc:
            raise ValueError(f"created_at: {exc}") from None
    return session, message


def parse(text: str, default_session: str) -> Parsed:
    parsed = Parsed()
    for where, item in _records(text):
        try:
            if isinstance(item, Exception):
                raise ValueError(f"not JSON ({item})")
            parsed.messages.append(_message(item, default_session))
        except ValueError as exc:
            parsed.problems.append(f"{where}: {exc}")
    return parsed


def _chunks(workspace: str, messages: list[tuple[str, message_pb2.MessageInput]],
            progress: Any, size: int = CHUNK) -> Iterator[message_pb2.ImportMessagesRequest]:
    """Consecutive messages of one session, `size` at a time."""
    start = 0
    while start < len(messages):
        session = messages[start][0]
        end = start
        while end < len(messages) and end - start < size and messages[end][0] == session:
            end += 1
        yield message_pb2.ImportMessagesRequest(
            workspace_id=workspace, session_id=session,
            messages=[m for _, m in messages[start:end]])
        progress.update(end - start)
        start = end


def read_export(path: Path) -> str:
    """The export's text, or ValueError saying in one line why it cannot be read."""
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an export file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); export it as UTF-8 JSON "
                         "or JSON Lines") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror}") from None


def run(path: Path, address: str, workspace: str, session: str, token: str | None,
        skip_invalid: bool, chunk_size: int = CHUNK) -> int:
    """The `import` command; returns the exit status."""
    from tqdm import tqdm

    try:
        text = read_export(path)
    except ValueError as exc:
        print(f"honcho-grpc import: {exc}", file=sys.stderr)
        return 2
    parsed = parse(text, session)
    for problem in parsed.problems[:20]:
        print(f"{path}: {problem}", file=sys.stderr)
    if len(parsed.problems) > 20:
        print(f"{path}: ... and {len(parsed.problems) - 20} more", file=sys.stderr)
    if parsed.problems and not skip_invalid:
        print("nothing imported (use --skip-invalid to import the valid messages)",
              file=sys.stderr)
        return 1
    if not parsed.messages:
        print("nothing to import", file=sys.stderr)
        return 1
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    started = time.perf_counter()
    with grpc.insecure_channel(address) as channel, tqdm(
            total=len(parsed.messages), unit="msg", file=sys.stderr) as progress:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        try:
            reply = stub.ImportMessages(_chunks(workspace, parsed.messages, progress,
                                                chunk_size),
                                        metadata=metadata, timeout=3600)
        except grpc.RpcError as err:
            progress.close()
            print(f"import failed, nothing was stored: {err.code().name}: {err.details()}",
                  file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started
    print(f"imported {reply.imported_count} messages into {reply.session_count} session(s) of "
          f"workspace {workspace} in {elapsed:.1f} s ({reply.imported_count / elapsed:,.0f} "
          f"msg/s); skipped {len(parsed.problems)} invalid")
    return 0
