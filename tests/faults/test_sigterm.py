"""SIGTERM under load: a `honcho-grpc serve` process stopped while writers keep sending
CreateMessages. Every write it acknowledged is in the database exactly once, the calls it
refused were refused as retryable (UNAVAILABLE or CANCELLED, never INTERNAL), the calls in
flight when the signal came were finished, and it exited cleanly within its grace period.
With a drain period, health turns NOT_SERVING at once while calls, on old and new
connections, are still served until the period ends."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import message_pb2, message_pb2_grpc

from tests.faults.conftest import ServeProcess, start_serve
from tests.worker.conftest import eventually

WRITERS = 8
BATCH = 5
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


@dataclass
class Ledger:
    """What the clients were told: acknowledged messages (id -> content), refusals by code,
    and when each acknowledgement arrived."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    acked_at: list[float] = field(default_factory=list)
    refused: Counter[grpc.StatusCode] = field(default_factory=Counter)
    refusal_details: list[str] = field(default_factory=list)


async def writer(stub: message_pb2_grpc.MessageServiceStub, ws: str, session: str,
                 ledger: Ledger, stop: asyncio.Event, *, once: bool = False) -> None:
    """Write batches of unique messages to `session` until stopped (or one call if `once`)."""
    batch = 0
    while not stop.is_set():
        contents = [f"writer {session} {id(ledger)} batch {batch} message {i}"
                    for i in range(BATCH)]
        batch += 1
        try:
            reply = await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id=session, messages=[
                    message_pb2.MessageInput(peer_id="p", content=c) for c in contents]),
                timeout=20)
        except grpc.aio.AioRpcError as err:
            ledger.refused[err.code()] += 1
            ledger.refusal_details.append(f"{err.code().name}: {err.details()}")
            if once:
                return
            await asyncio.sleep(0.01)  # the server is going away; do not spin
            continue
        ledger.acked_at.append(time.monotonic())
        for message, content in zip(reply.messages, contents, strict=True):
            assert message.content == content
            ledger.acknowledged[message.id] = content
        if once:
            return


async def test_sigterm_under_load_loses_no_acknowledged_write(
        serve_processes: list[ServeProcess], pg_dsn: str, ws: str) -> None:
    server = start_serve(pg_dsn, grace=5.0)
    serve_processes.append(server)
    ledger, stop = Ledger(), asyncio.Event()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = message_pb2_grpc.MessageServiceStub(channel)
        writers = [asyncio.create_task(writer(stub, ws, f"s{n}", ledger, stop))
                   for n in range(WRITERS)]
        await eventually(lambda: _at_least(ledger, 50 * BATCH), within=30)
        signalled, code, exited = await _terminate(server)
        await asyncio.sleep(0.3)  # writers meet the closed port too
        stop.set()
        await asyncio.gather(*writers)
    log = server.output()
    assert code == 0, log
    assert exited - signalled < 5.0, "the in-flight calls are short: no need for the grace"
    assert "Traceback" not in log and "ERROR" not in log, log
    # The calls in flight when the signal came were finished, not dropped.
    assert any(t > signalled for t in ledger.acked_at)
    assert ledger.refused, "writers kept calling after the server stopped"
    assert set(ledger.refused) <= RETRYABLE, ledger.refusal_details[:5]
    await _every_acknowledged_write_stored_once(pg_dsn, ws, ledger, in_flight=WRITERS)


async def test_writes_outliving_the_grace_are_cancelled_not_half_done(
        serve_processes: list[ServeProcess], pg_dsn: str, ws: str) -> None:
    """Writes blocked past the grace period are cancelled: the server still exits in time,
    their callers hear a retryable status, and nothing of them is stored."""
    grace = 1.5
    server = start_serve(pg_dsn, grace=grace)
    serve_processes.append(server)
    ledger, stuck, stop = Ledger(), Ledger(), asyncio.Event()
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = message_pb2_grpc.MessageServiceStub(channel)
            await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id="stuck", messages=[
                    message_pb2.MessageInput(peer_id="p", content="before the lock")]))
            lock = conn.transaction()
            await lock.start()
            # Holding the session row: its writers queue up behind the sequence reservation.
            await conn.execute("SELECT 1 FROM sessions WHERE workspace_id = $1 AND "
                               "session_id = 'stuck' FOR NO KEY UPDATE", ws)
            writers = [asyncio.create_task(writer(stub, ws, f"s{n}", ledger, stop))
                       for n in range(4)]
            blocked = [asyncio.create_task(writer(stub, ws, "stuck", stuck, stop, once=True))
                       for _ in range(3)]
            async with asyncpg.create_pool(pg_dsn, min_size=1, max_size=1) as pool:
                await eventually(lambda: _waiting_on_lock(pool, 3), within=20)
            await eventually(lambda: _at_least(ledger, 20 * BATCH), within=30)
            signalled, code, exited = await _terminate(server)
            stop.set()
            await asyncio.gather(*writers, *blocked)
        await lock.rollback()
    finally:
        await conn.close()
    log = server.output()
    assert code == 0, log
    assert grace - 0.2 < exited - signalled < grace + 3.0
    assert "Traceback" not in log and "ERROR" not in log, log
    assert not stuck.acknowledged and sum(stuck.refused.values()) == 3
    assert set(stuck.refused) <= RETRYABLE, stuck.refusal_details
    assert set(ledger.refused) <= RETRYABLE, ledger.refusal_details[:5]
    stored = await _every_acknowledged_write_stored_once(pg_dsn, ws, ledger, in_flight=4,
                                                         also={"before the lock"})
    assert not [c for c in stored if c.startswith("writer stuck")], "a cancelled write landed"


async def test_sigterm_drains_before_refusing(serve_processes: list[ServeProcess], pg_dsn: str,
                                              ws: str) -> None:
    """What a load balancer needs: NOT_SERVING at once, the service unchanged meanwhile."""
    drain = 2.0
    server = start_serve(pg_dsn, grace=5.0, drain=drain)
    serve_processes.append(server)
    ledger, stop = Ledger(), asyncio.Event()
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stub = message_pb2_grpc.MessageServiceStub(channel)
        await writer(stub, ws, "before", ledger, stop, once=True)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: _not_serving(health), within=1.0, interval=0.02)
        not_serving_after = time.monotonic() - signalled
        served = 0
        while time.monotonic() - signalled < drain - 0.5:
            # A new connection too: balancers that have not yet noticed open them.
            async with grpc.aio.insecure_channel(server.address) as fresh:
                for target in (stub, message_pb2_grpc.MessageServiceStub(fresh)):
                    await writer(target, ws, f"draining-{served}", ledger, stop, once=True)
                    served += 1
        assert not ledger.refused, ledger.refusal_details
        code = await asyncio.to_thread(server.proc.wait, 15)
        exited = time.monotonic()
        try:
            await stub.CreateMessages(message_pb2.CreateMessagesRequest(
                workspace_id=ws, session_id="after", messages=[
                    message_pb2.MessageInput(peer_id="p", content="after")]), timeout=5)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        else:
            raise AssertionError("a call succeeded after the server exited")
    log = server.output()
    assert code == 0, log
    assert not_serving_after < 0.5, f"health said NOT_SERVING only after {not_serving_after}s"
    assert served >= 4, served
    assert drain <= exited - signalled < drain + 3.0
    assert "Traceback" not in log and "ERROR" not in log, log
    await _every_acknowledged_write_stored_once(pg_dsn, ws, ledger, in_flight=0)


async def _not_serving(health: health_pb2_grpc.HealthStub) -> bool:
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
    return bool(reply.status == health_pb2.HealthCheckResponse.NOT_SERVING)


async def _terminate(server: ServeProcess) -> tuple[float, int, float]:
    """SIGTERM; (when it was sent, the exit code, when the process had exited)."""
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.proc.wait, 15)
    return signalled, code, time.monotonic()


async def _waiting_on_lock(pool: asyncpg.Pool, count: int) -> bool:
    # Activity statistics are a snapshot per transaction: ask outside the lock's one.
    waiting = await pool.fetchval("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE wait_event_type = 'Lock' AND datname = current_database()")
    return bool(waiting >= count)


async def _at_least(ledger: Ledger, count: int) -> bool:
    return len(ledger.acknowledged) >= count


async def _every_acknowledged_write_stored_once(dsn: str, ws: str, ledger: Ledger, *,
                                                in_flight: int,
                                                also: set[str] | None = None) -> Counter[str]:
    """Check the database against what clients were told; returns the stored contents."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT message_id, content FROM messages "
                                "WHERE workspace_id = $1", ws)
    finally:
        await conn.close()
    stored = Counter(r["content"] for r in rows)
    assert max(stored.values()) == 1, "a message was stored twice"
    # Whole batches only: a batch is in the database entirely or not at all.
    batches = Counter(c.rsplit(" message ", 1)[0] for c in stored if c.startswith("writer "))
    assert set(batches.values()) <= {BATCH}, "a batch was stored in part"
    by_id = {r["message_id"]: r["content"] for r in rows}
    missing = {i: c for i, c in ledger.acknowledged.items() if by_id.get(i) != c}
    assert not missing, f"{len(missing)} acknowledged messages are not stored"
    # Anything else stored was written by a call whose answer was lost when the connection
    # closed: at most the batches in flight, never more.
    others = set(stored) - set(ledger.acknowledged.values()) - (also or set())
    assert len(others) <= in_flight * BATCH
    assert all(c.startswith("writer s") for c in others)
    return stored
