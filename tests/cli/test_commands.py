"""`honcho-grpc --version | status | memory | reset`, import's early refusals and the demo's
HONCHO_ADDRESS, against the live in-process server (status, memory), a real embedded
PostgreSQL (reset) or nothing at all (one clear line)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    message_pb2,
    peer_pb2,
    workspace_pb2,
    workspace_pb2_grpc,
)

import honcho_grpc
from honcho_grpc.db.embedded import EmbeddedPostgres, free_port
from honcho_grpc.db.pool import Database, open_database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.providers.tokens import count_tokens
from honcho_grpc.server.app import Running, start
from honcho_grpc.server.auth import Claims, mint_token
from tests.cli.cli_process import clean_env, honcho, one_line, run_cli
from tests.conftest import ROOT, Stubs, make_settings, scratch_dir
from tests.postgres_process import PostgresProcess

SECRET = "status-test-secret-" + "s" * 40


async def seed(stubs: Stubs, ws: str) -> None:
    """Two peers talking in one session: queued work (no worker runs in-process)."""
    await stubs.messages.CreateMessages(message_pb2.CreateMessagesRequest(
        workspace_id=ws, session_id="chat", messages=[
            message_pb2.MessageInput(peer_id="alice", content="I adopted a puppy named Biscuit"),
            message_pb2.MessageInput(peer_id="bob", content="Congratulations!"),
            message_pb2.MessageInput(peer_id="alice", content="I also run on Sundays")]))


def table_row(out: str, ws: str) -> list[str]:
    rows = [line.split() for line in out.splitlines() if line.startswith(ws + " ")]
    assert len(rows) == 1, out
    return rows[0]


def test_version() -> None:
    done = honcho("--version", cwd=ROOT)
    assert done.returncode == 0 and done.stdout == f"honcho-grpc {honcho_grpc.__version__}\n"


# --- status -----------------------------------------------------------------------------------


async def test_status_of_a_running_server(server: Running, stubs: Stubs, ws: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    workspaces = workspace_pb2_grpc.WorkspaceServiceStub(stubs.channel)
    await workspaces.GetOrCreateWorkspace(workspace_pb2.GetOrCreateWorkspaceRequest(
        workspace_id=f"{ws}-older"))
    await seed(stubs, ws)
    status = await workspaces.GetQueueStatus(workspace_pb2.GetQueueStatusRequest(workspace_id=ws))
    queue, unembedded = status.totals, status.embedding.pending
    assert queue.pending > 0 and unembedded > 0
    address = f"127.0.0.1:{server.port}"
    assert await run_cli("status", "--address", address, "--workspace", ws) == 0
    out = capsys.readouterr().out
    assert f"server      {address}  SERVING" in out and "database    reachable" in out
    assert f"queue       pending {queue.pending} · in progress 0 · completed 0 · failed 0" in out
    assert f"embedding   pending {unembedded} · oldest " in out
    row = table_row(out, ws)
    assert row[:-1] == [ws, "2", "1", str(queue.pending), "0", "0", "0", str(unembedded)]
    assert row[-1].endswith("s") and float(row[-1][:-1]) >= 0
    # Every workspace, newest first: this one leads; the others are counted, not listed.
    assert await run_cli("status", "--address", address, "--limit", "1") == 0
    out = capsys.readouterr().out
    assert table_row(out, ws)[1:3] == ["2", "1"] and f"{ws}-older" not in out
    assert "... and " in out and " more workspaces (--limit, --workspace)" in out


async def test_status_when_the_database_is_down(own_postgres: tuple[PostgresProcess, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pg, dsn = own_postgres
    settings = make_settings(dsn, db={"pool_min_size": 1, "pool_max_size": 5})
    database = await open_database(settings)
    running = await start(settings, database, embedder=FakeEmbedder(384), background=False)
    address = f"127.0.0.1:{running.port}"
    try:
        assert await run_cli("status", "--address", address) == 0
        assert "database    reachable" in capsys.readouterr().out
        pg.stop()
        deadline = time.monotonic() + 15  # health follows a probe every 2 s
        while True:
            code, out = await run_cli("status", "--address", address), capsys.readouterr().out
            if "NOT_SERVING" in out or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert code == 1
        assert f"server      {address}  NOT_SERVING" in out
        assert "database    not answering (UNAVAILABLE: " in out, out
    finally:
        pg.start()
        await running.stop(grace=1.0)
        await database.close()


def test_status_with_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    done = honcho("status", cwd=tmp_path, SERVER_PORT=str(port))
    assert done.returncode == 1
    assert one_line(done) == (
        f"honcho-grpc status: no honcho-grpc server answers on 127.0.0.1:{port} (start one "
        "with `make run` or `honcho-grpc up`; elsewhere: --address or HONCHO_ADDRESS)")


@pytest.fixture
async def auth_server(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})
    running = await start(settings, db, embedder=FakeEmbedder(384), background=False)
    yield running
    await running.stop(grace=1.0)


async def test_status_when_the_server_checks_keys(auth_server: Running, stubs: Stubs, ws: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    await seed(stubs, ws)
    address = f"127.0.0.1:{auth_server.port}"
    assert await run_cli("status", "--address", address) == 0
    assert "database    not checked: listing workspaces needs an admin key" in (
        capsys.readouterr().out)
    key = mint_token(SECRET, Claims(workspace=ws), None)
    assert await run_cli("status", "--address", address, "--workspace", ws,
                         "--token", key) == 0
    assert table_row(capsys.readouterr().out, ws)[1:3] == ["2", "1"]


# --- memory -----------------------------------------------------------------------------------


async def test_memory_conclusions_card_and_summary(server: Running, stubs: Stubs, db: Database,
                                                   ws: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    await seed(stubs, ws)
    await stubs.conclusions.CreateConclusions(conclusion_pb2.CreateConclusionsRequest(
        workspace_id=ws, conclusions=[
            conclusion_pb2.ConclusionInput(observer_id="alice", observed_id="alice",
                                           content="alice has a puppy named Biscuit"),
            conclusion_pb2.ConclusionInput(observer_id="alice", observed_id="bob",
                                           content="bob is supportive")]))
    await stubs.peers.SetPeerCard(peer_pb2.SetPeerCardRequest(
        workspace_id=ws, peer_id="alice", entries=["ATTRIBUTE: alice runs on Sundays"]))
    summary = "Alice told Bob about her puppy."
    last = await db.pool.fetchrow("SELECT message_id, seq FROM messages WHERE workspace_id = $1 "
                                  "ORDER BY seq DESC LIMIT 1", ws)
    await db.pool.execute(  # as the worker writes it
        "INSERT INTO summaries (workspace_id, session_id, summary_type, content, "
        "last_message_id, last_message_seq, token_count) VALUES ($1, 'chat', 'short', $2, $3, "
        "$4, $5)", ws, summary, last["message_id"], last["seq"], count_tokens(summary))
    where = ["--workspace", ws, "--address", f"127.0.0.1:{server.port}"]

    assert await run_cli("memory", "conclusions", *where, "--observer", "alice") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "conclusions of alice (2, newest first)"
    # One batch shares its creation time: their order is the ids', so compare as a set.
    assert sorted(out[1:]) == ["- [explicit] alice: alice has a puppy named Biscuit",
                               "- [explicit] bob: bob is supportive"]
    assert await run_cli("memory", "conclusions", *where, "--observer", "alice",
                         "--observed", "bob") == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["- [explicit] bob is supportive"]
    assert await run_cli("memory", "conclusions", *where, "--observer", "bob") == 0
    assert "bob holds no conclusions yet" in capsys.readouterr().out

    assert await run_cli("memory", "card", *where, "--peer", "alice") == 0
    assert capsys.readouterr().out.splitlines() == [
        "alice's card (1 entries)", "- ATTRIBUTE: alice runs on Sundays"]
    assert await run_cli("memory", "card", *where, "--peer", "alice", "--target", "bob") == 0
    assert capsys.readouterr().out.strip() == "alice's card about bob: none yet"

    assert await run_cli("memory", "summary", *where, "--session", "chat") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"== short summary (up to message {last['seq']}, " \
                     f"{count_tokens(summary)} tokens)"
    assert out[1:] == [summary, "== long summary: none yet"]


async def test_memory_of_an_unknown_peer_is_one_line(server: Running, stubs: Stubs, ws: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await seed(stubs, ws)
    assert await run_cli("memory", "card", "--workspace", ws, "--peer", "carol",
                         "--address", f"127.0.0.1:{server.port}") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"honcho-grpc memory card: NOT_FOUND: peer not found "
                   f"(workspaceId='{ws}', peerId='carol')"]


def test_memory_arguments_are_checked_before_calling(tmp_path: Path) -> None:
    done = honcho("memory", "conclusions", "--workspace", "a b", "--observer", "x",
                  "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --workspace: 'a b' is not an id" in one_line(done)


# --- import: refused before any upload ------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("missing.jsonl", "--workspace", "w", "--session", "s"), "missing.jsonl: no such file"),
    ((".", "--workspace", "w", "--session", "s"), ". is a directory, not an export file"),
    (("chat.jsonl", "--workspace", "bad/ws", "--session", "s"),
     "argument --workspace: 'bad/ws' is not an id"),
    (("chat.jsonl", "--workspace", "w", "--session", ""), "argument --session: '' is not an id"),
])
def test_import_refuses_early(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    (tmp_path / "chat.jsonl").write_text('{"role": "user", "content": "hi"}\n')
    # Nothing listens there: reaching the upload would fail with UNAVAILABLE instead.
    done = honcho("import", *args, "--address", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("honcho-grpc import") and message in line, line


# --- reset ------------------------------------------------------------------------------------


def test_reset_deletes_the_embedded_database_only_when_nothing_runs_on_it() -> None:
    root = scratch_dir("honcho-reset-")
    try:
        check_reset(root, root / "pg")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_reset(root: Path, data: Path) -> None:
    pg = EmbeddedPostgres(data, fsync=False)
    pg.start()
    try:
        done = honcho("reset", "--yes", cwd=root, DB_DATA_DIR=str(data))
        assert done.returncode == 1 and data.exists()
        assert pg.process is not None
        assert one_line(done) == (f"honcho-grpc reset: a PostgreSQL (pid {pg.process.pid}) is "
                                  f"running on {data.resolve()}: stop `honcho-grpc up` / "
                                  "`make run` first")
    finally:
        pg.stop()
    done = honcho("reset", cwd=root, DB_DATA_DIR="pg")  # relative: to the current folder
    assert done.returncode == 1 and (data / "PG_VERSION").exists()
    assert done.stdout.startswith(f"would delete {data.resolve()} (")
    done = honcho("reset", "--yes", cwd=root, DB_DATA_DIR="pg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"deleted {data.resolve()}") and not data.exists()
    assert honcho("reset", "--yes", cwd=root, DB_DATA_DIR="pg").stdout.startswith(
        "nothing to reset")


def test_reset_refuses_what_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    done = honcho("reset", "--yes", cwd=tmp_path, DB_DATA_DIR=str(tmp_path))
    assert done.returncode == 1 and (tmp_path / "notes.txt").exists()
    assert "is not a PostgreSQL data directory (no PG_VERSION); not deleting it" in (
        one_line(done))
    done = honcho("reset", "--yes", cwd=tmp_path, DB_CONNECTION_URI="postgresql://db/x")
    assert done.returncode == 2
    assert "DB_CONNECTION_URI (or DATABASE_URL) names an external PostgreSQL" in one_line(done)


# --- the demo's address -----------------------------------------------------------------------


async def test_demo_honours_honcho_address(server: Running, db: Database) -> None:
    started = await db.pool.fetchval("SELECT now()")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "demo.py"), cwd=ROOT,
        env=clean_env(HONCHO_ADDRESS=f"127.0.0.1:{server.port}"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored < 22 and time.monotonic() < deadline and demo.returncode is None:
            await asyncio.sleep(0.2)
            stored = await db.pool.fetchval(
                "SELECT count(*) FROM messages m JOIN workspaces w USING (workspace_id) "
                "WHERE w.workspace_id LIKE 'demo-%' AND w.created_at >= $1", started)
        assert stored == 22  # the whole conversation reached this server
    finally:
        if demo.returncode is None:
            demo.kill()  # it would wait for a worker the in-process server does not run
        await demo.wait()


def test_demo_names_the_address_nothing_answers_on(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], cwd=tmp_path,
                          env=clean_env(HONCHO_ADDRESS=address), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert one_line(done) == (f"no honcho-grpc server answers on {address}: start one with "
                              "`make run`, or point HONCHO_ADDRESS / --address at it")


# --- keys create: what is wrong, once ---------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--peer", "p1"), "--peer needs --workspace"),
    ((), "give --admin, or --workspace (with --peer or --session for a narrower key)"),
    (("--admin", "--workspace", "w", "--peer", "p"), "--admin takes no other scope (drop "
                                                    "--workspace, --peer)"),
    (("--workspace", "w", "--peer", "p", "--session", "s"), "give --peer or --session, not "
                                                            "both"),
    (("--workspace", "a.b"), "--workspace 'a.b' is not an id (1-512 characters of letters, "
                             "digits, '_' or '-')"),
])
def test_keys_create_says_what_is_wrong_once(args: tuple[str, ...], message: str,
                                             tmp_path: Path) -> None:
    done = honcho("keys", "create", *args, cwd=tmp_path, AUTH_JWT_SECRET=SECRET)
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done) == f"honcho-grpc keys create: {message}"


def test_keys_create_without_a_secret(tmp_path: Path) -> None:
    done = honcho("keys", "create", "--workspace", "w", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done) == ("honcho-grpc keys create: AUTH_JWT_SECRET is not set: keys are "
                              "signed with it (`honcho-grpc keys secret` prints a good one)")
