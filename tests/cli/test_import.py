"""`honcho-grpc import` against the live in-process server: JSONL and JSON array exports,
a malformed line refused with its number (nothing imported) or skipped on request, the
`--token` sent as a bearer key to a server that checks them, bounded `--chunk-size`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from honcho_grpc.server.auth import Claims, mint_token
from tests.cli.cli_process import run_cli
from tests.conftest import make_settings

SECRET = "import-test-secret-" + "s" * 40


async def stored(db: Database, ws: str) -> list[tuple[str, str, str]]:
    rows = await db.pool.fetch(
        "SELECT session_id, peer_id, content FROM messages WHERE workspace_id = $1 "
        "ORDER BY session_id, seq", ws)
    return [(r["session_id"], r["peer_id"], r["content"]) for r in rows]


async def test_jsonl_with_a_bad_line(server: Running, db: Database, ws: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "chat.jsonl"
    export.write_text("\n".join([
        json.dumps({"role": "user", "content": "I moved to Lisbon", "created_at": 1700000000}),
        json.dumps({"speaker": "Caroline Smith", "text": "Welcome!",
                    "metadata": {"dia_id": "D1:2"}}),
        "{not json",
        json.dumps({"author": "bob"}),
        json.dumps({"peer_id": "bob", "content": "elsewhere", "session_id": "other"}),
    ]) + "\n")
    address = f"127.0.0.1:{server.port}"
    args = ["import", str(export), "--workspace", ws, "--session", "main", "--address", address]
    assert await run_cli(*args) == 1
    err = capsys.readouterr().err
    assert "line 3: not JSON" in err and "line 4: no text" in err
    assert await stored(db, ws) == []  # refused as a whole
    assert await run_cli(*args, "--skip-invalid") == 0
    out = capsys.readouterr().out
    assert "imported 3 messages into 2 session(s)" in out and "skipped 2 invalid" in out
    assert await stored(db, ws) == [("main", "user", "I moved to Lisbon"),
                                    ("main", "Caroline_Smith", "Welcome!"),
                                    ("other", "bob", "elsewhere")]
    when = await db.pool.fetchval("SELECT extract(epoch FROM created_at) FROM messages "
                                  "WHERE workspace_id = $1 AND peer_id = 'user'", ws)
    assert int(when) == 1700000000
    assert await db.pool.fetchval("SELECT metadata->>'dia_id' FROM messages WHERE "
                                  "workspace_id = $1 AND peer_id = 'Caroline_Smith'",
                                  ws) == "D1:2"


async def test_json_array_in_chunks(server: Running, db: Database, ws: str,
                                    tmp_path: Path) -> None:
    export = tmp_path / "chat.json"
    export.write_text(json.dumps([{"peer": f"p{i % 3}", "content": f"message {i}"}
                                  for i in range(1200)]))
    assert await run_cli("import", str(export), "--workspace", ws, "--session", "s",
                         "--address", f"127.0.0.1:{server.port}") == 0
    rows = await stored(db, ws)
    assert len(rows) == 1200 and rows[-1] == ("s", "p2", "message 1199")


async def test_unreachable_server_is_a_clear_failure(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "chat.jsonl"
    export.write_text(json.dumps({"role": "user", "content": "hi"}) + "\n")
    assert await run_cli("import", str(export), "--workspace", "w", "--session", "s",
                         "--address", "127.0.0.1:1") == 1
    assert "import failed, nothing was stored: UNAVAILABLE" in capsys.readouterr().err


@pytest.fixture
async def auth_server(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})
    running = await start(settings, db, embedder=FakeEmbedder(384), background=False)
    yield running
    await running.stop(grace=1.0)


async def test_token_is_sent_as_bearer(auth_server: Running, db: Database, ws: str,
                                       tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "chat.jsonl"
    export.write_text("".join(json.dumps({"peer": "ann", "content": f"line {i}"}) + "\n"
                              for i in range(250)))
    args = ["import", str(export), "--workspace", ws, "--session", "s",
            "--address", f"127.0.0.1:{auth_server.port}", "--chunk-size", "100"]
    assert await run_cli(*args) == 1
    assert "nothing was stored: UNAUTHENTICATED" in capsys.readouterr().err
    key = mint_token(SECRET, Claims(workspace=ws), None)
    assert await run_cli(*args, "--token", key) == 0
    assert "imported 250 messages into 1 session(s)" in capsys.readouterr().out
    assert len(await stored(db, ws)) == 250


async def test_chunk_size_is_bounded(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    for bad in ("0", "1001", "ten"):
        assert await run_cli("import", str(tmp_path / "x.json"), "--workspace", "w",
                             "--session", "s", "--chunk-size", bad) == 2
        assert "--chunk-size" in capsys.readouterr().err
