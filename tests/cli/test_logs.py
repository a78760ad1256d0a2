"""Logs (honcho_grpc/logs.py) as a process writes them: every line on a non-terminal stderr
is one JSON object, whatever the message holds (quotes, newlines, non-ASCII text, even to a
stream that cannot encode it), with tracebacks, warnings and uncaught exceptions inside the
objects and the trace and span ids of the span the record was written in; a terminal gets
readable text, and APP_LOG_FORMAT chooses either way. Each case runs in a process of its own."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

PROGRAM = textwrap.dedent('''
    import logging, threading, warnings
    from honcho_grpc import logs, telemetry
    from honcho_grpc.settings import AppSettings
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    logs.configure(AppSettings(), role="server")
    log = logging.getLogger("honcho_grpc.test")
    log.info('he said "stop"\\nthen left — déjà vu, 東京, \\x00 and a tab\\t')
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed: %s", "it's gone")
    warnings.warn("a warning, 'quoted'")
    otel = telemetry.install(SimpleSpanProcessor(InMemorySpanExporter()), InMemoryMetricReader())
    with otel.tracer.start_as_current_span("rpc") as span:
        ctx = span.get_span_context()
        log.warning("inside a span", extra={"expect": [f"{ctx.trace_id:032x}",
                                                        f"{ctx.span_id:016x}"]})
    otel.shutdown()
    thread = threading.Thread(target=lambda: 1 / 0, name="helper")
    thread.start()
    thread.join()
    raise RuntimeError("the end\\nof the program")
''')


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", errors="strict",
                          env={**os.environ, "APP_LOG_LEVEL": "INFO", **env}, timeout=60)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_every_line_is_one_json_object(encoding: str) -> None:
    done = run({"PYTHONIOENCODING": encoding})
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert len(records) == 6, done.stderr
    first, failed, warned, spanned, in_thread, uncaught = records
    assert first["message"] == ('he said "stop"\nthen left — déjà vu, 東京, \x00 and a tab\t')
    assert first["level"] == "INFO" and first["logger"] == "honcho_grpc.test"
    assert first["role"] == "server" and first["time"].endswith("+00:00")
    assert next(iter(first)) == "time"
    assert "KeyError: 'missing'" in failed["exc_info"] and failed["level"] == "ERROR"
    assert failed["message"] == "lookup failed: it's gone"
    assert warned["logger"] == "py.warnings" and "'quoted'" in warned["message"]
    assert [spanned["trace_id"], spanned["span_id"]] == spanned["expect"]
    assert "trace_id" not in first and "trace_id" not in failed  # outside any span
    assert "ZeroDivisionError" in in_thread["exc_info"] and "helper" in in_thread["message"]
    assert uncaught["level"] == "CRITICAL"
    assert "RuntimeError: the end\nof the program" in uncaught["exc_info"]
    if encoding == "ascii":
        assert done.stderr.isascii()  # escaped as \\uXXXX, never as the stream's \\xNN


def test_json_when_asked_even_on_a_terminal() -> None:
    lines = on_terminal({"APP_LOG_FORMAT": "json"})
    assert json.loads(lines[0])["message"].startswith('he said "stop"')


@pytest.mark.parametrize("setting", ["auto", "text"])
def test_text_on_a_terminal(setting: str) -> None:
    lines = on_terminal({"APP_LOG_FORMAT": setting})
    assert " INFO    honcho_grpc.test: he said \"stop\"" in lines[0]
    assert any(line.startswith("Traceback") for line in lines)  # as Python prints it
    assert not lines[0].startswith("{")


def on_terminal(env: dict[str, str]) -> list[str]:
    """The program with a pseudo-terminal as its stderr: what a person would see."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "APP_LOG_LEVEL": "INFO", **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(60) == 1
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()
