"""Command line: `honcho-grpc serve | worker | up | migrate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from honcho_grpc.settings import Settings


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.app.log_level.upper(), stream=sys.stderr,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
               '"message":"%(message)s"}',
    )


async def _migrate(settings: Settings, reset_embeddings: bool) -> None:
    from honcho_grpc.db.pool import open_database
    from honcho_grpc.db.pool import reset_embeddings as reset

    db = await open_database(settings, migrate=True) if not reset_embeddings else None
    if db is None:
        # Resizing must happen before the dimension check that open_database performs.
        import asyncpg

        from honcho_grpc.db.pool import apply_migrations, start_embedded

        embedded = None if settings.db.uri() else start_embedded(settings)
        dsn = settings.db.uri() or (embedded.dsn if embedded else "")
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
            await reset(conn, settings.embedding.dimensions)
        finally:
            await conn.close()
            if embedded:
                embedded.stop()
        print(f"embeddings reset to {settings.embedding.dimensions} dimensions")
        return
    await db.close()
    print("migrations applied")


def _worker(settings: Settings, retry: bool, workspace: str | None) -> None:
    from honcho_grpc.worker import runner
    from honcho_grpc.worker.db import NoDatabaseError

    try:
        if retry:
            count = asyncio.run(runner.retry_failed_main(settings, workspace))
            print(f"{count} failed queue rows queued again")
        else:
            asyncio.run(runner.main(settings))
    except NoDatabaseError as exc:
        sys.exit(f"honcho-grpc worker: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="honcho-grpc")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gRPC server")
    sub.add_parser("up", help="run the server and the worker together")
    worker = sub.add_parser("worker", help="run a background worker")
    worker.add_argument("--retry-failed", action="store_true",
                        help="put failed queue rows back in the queue, then exit")
    worker.add_argument("--workspace", default=None,
                        help="with --retry-failed: only this workspace")
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument("--reset-embeddings", action="store_true",
                         help="resize vector columns to EMBEDDING_DIMENSIONS and re-embed")
    args = parser.parse_args(argv)
    settings = Settings()
    _setup_logging(settings)
    if args.command == "serve":
        from honcho_grpc.server.app import serve

        asyncio.run(serve(settings))
    elif args.command == "up":
        from honcho_grpc.worker.supervisor import up

        asyncio.run(up(settings))
    elif args.command == "worker":
        _worker(settings, args.retry_failed, args.workspace)
    elif args.command == "migrate":
        asyncio.run(_migrate(settings, args.reset_embeddings))


if __name__ == "__main__":
    main()
