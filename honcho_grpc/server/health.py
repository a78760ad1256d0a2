"""Health that tells the truth: SERVING only while the database answers through the pool.

A probe runs every few seconds; when the database is down, or the pool cannot hand out a
connection in time, every service turns NOT_SERVING (load balancers and Kubernetes probes move
traffic away), and SERVING again by itself once a probe succeeds. During a drain the health
servicer ignores these updates (grpc's enter_graceful_shutdown), so a drain is never undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg
from grpc_health.v1 import health, health_pb2

from honcho_grpc.errors import HonchoError
from honcho_grpc.store import health as store

log = logging.getLogger(__name__)


async def set_serving(servicer: health.aio.HealthServicer, services: tuple[str, ...],
                      serving: bool) -> None:
    """The overall status ("") and every service's."""
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in ("", *services):
        await servicer.set(name, status)


@dataclass
class DatabaseHealth:
    servicer: health.aio.HealthServicer
    pool: asyncpg.Pool
    services: tuple[str, ...]
    interval_seconds: float = 2.0
    timeout_seconds: float = 1.5
    serving: bool = True

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await store.ping(self.pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                HonchoError) as exc:  # HonchoError: SERVER_BUSY, no connection free in time
            if self.serving:
                log.warning("health: the database does not answer (%s); NOT_SERVING",
                            type(exc).__name__)
            return False
        return True

    async def set(self, serving: bool) -> None:
        if serving and not self.serving:
            log.info("health: the database answers again; SERVING")
        self.serving = serving
        await set_serving(self.servicer, self.services, serving)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            serving = await self.probe()
            if serving != self.serving:
                await self.set(serving)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_seconds)
