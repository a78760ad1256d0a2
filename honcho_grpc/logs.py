"""Logging for every process (server, worker, `up`, the command line): one configuration.

JSON lines (python-json-logger) for machines, plain lines for a person at a terminal
(`APP_LOG_FORMAT`: `auto` picks text when stderr is a TTY, JSON otherwise). Every JSON line
is one complete object whatever the message holds: quotes, newlines, non-ASCII text and
tracebacks are escaped inside it (a traceback is the `exc_info` field, never lines of its
own), and so are Python warnings and uncaught exceptions, which would otherwise be written
to stderr raw. A record written inside an OpenTelemetry span carries its `trace_id` and
`span_id` (hex, as the trace backends show them), so a log line leads to its trace.

gRPC core writes its own lines straight to stderr, past Python's logging; the command line
keeps them to errors (GRPC_VERBOSITY, set before grpc is imported), so they do not come
between the JSON lines.
"""

from __future__ import annotations

import codecs
import logging
import sys
import threading
from types import TracebackType
from typing import IO, Any, Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from honcho_grpc.settings import AppSettings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TraceContext(logging.Filter):
    """Adds the current span's ids to a record (nothing outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


class _Formatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """`time` first: the one field a person reading the raw lines looks for."""
        return {"time": log_data.pop("time", None), **log_data}


def json_formatter(stream: IO[str], role: str) -> JsonFormatter:
    """time, level, logger, message, role, then any `extra` fields and the traceback.

    Non-ASCII text is written as itself only to a UTF-8 stream; to any other, escaped as
    \\uXXXX (a stream's own replacement, such as `\\xe9`, would not be valid JSON)."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    return _Formatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"role": role} if role else None,
        timestamp="time",
        json_ensure_ascii=codecs.lookup(encoding).name != "utf-8",
    )


def use_json(log_format: Literal["auto", "json", "text"], stream: IO[str]) -> bool:
    if log_format != "auto":
        return log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


def configure(settings: AppSettings, role: str = "", stream: IO[str] | None = None) -> None:
    """Route every logger of this process to `stream` (stderr) in the configured format.
    `role` (server, worker, up...) is a field of each JSON line: `up` writes the server's
    and its worker's lines to the same stream."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContext())
    as_json = use_json(settings.log_format, stream)
    handler.setFormatter(json_formatter(stream, role) if as_json
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)  # warnings.warn -> the `py.warnings` logger
    if as_json:
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


_uncaught = logging.getLogger("honcho_grpc.uncaught")


def _log_uncaught(kind: type[BaseException], value: BaseException,
                  tb: TracebackType | None) -> None:
    _uncaught.critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread else "?"
    _uncaught.critical("uncaught %s in thread %s", args.exc_type.__name__, name,
                       exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
