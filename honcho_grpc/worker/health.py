"""The worker's liveness signal: grpc.health.v1 on QUEUE_HEALTH_PORT, served by the worker's
own event loop.

A worker has no gRPC API, so this small listener is its only one. It answers SERVING once the
worker is ready (model checked, pool open, listening for jobs) and NOT_SERVING from the moment
it is told to stop. Because the answer comes from the loop that runs the jobs, a worker
whose loop is wedged stops answering, and the probe (Kubernetes' gRPC liveness probe, or
`honcho-grpc health --worker`) fails. The database being down does not make it fail: a
restart would not bring the database back, and the worker reconnects by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from honcho_grpc.settings import Settings


@dataclass
class WorkerHealth:
    server: grpc.aio.Server
    servicer: health.aio.HealthServicer
    port: int
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    async def start(cls, settings: Settings) -> WorkerHealth:
        servicer = health.aio.HealthServicer()
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{settings.server.host}:{settings.queue.health_port}")
        await server.start()
        return cls(server, servicer, port)

    def ready(self) -> None:
        """Called by the worker once it takes jobs (from its loop, synchronously)."""
        task = asyncio.get_running_loop().create_task(
            self.servicer.set("", health_pb2.HealthCheckResponse.SERVING))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        await self.servicer.enter_graceful_shutdown()
        await self.server.stop(1.0)
