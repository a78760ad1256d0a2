"""Command line: `honcho-grpc serve | worker | up | migrate | keys | import`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# gRPC core logs to stderr by itself (e.g. "chttp2_transport ... Got goaway" when a server
# goes away): errors only, unless the user asks for more. Read once, when grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

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
    from honcho_grpc.providers.embeddings import EmbeddingDimensionError
    from honcho_grpc.worker import runner
    from honcho_grpc.worker.db import NoDatabaseError

    try:
        if retry:
            count = asyncio.run(runner.retry_failed_main(settings, workspace))
            print(f"{count} failed queue rows queued again")
        else:
            asyncio.run(runner.main(settings))
    except (NoDatabaseError, EmbeddingDimensionError) as exc:
        sys.exit(f"honcho-grpc worker: {exc}")


DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `30m`, `12h`, `7d`, `2w`."""
    match = DURATION_RE.match(text)
    if not match or int(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive duration (e.g. 3600, 30m, 12h, 7d)")
    return timedelta(seconds=int(match[1]) * DURATION_UNITS[match[2]])


def _chunk_size(text: str) -> int:
    from honcho_grpc.importer import MAX_CHUNK

    if not text.isdigit() or not 1 <= int(text) <= MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {MAX_CHUNK}")
    return int(text)


def _keys(settings: Settings, args: argparse.Namespace) -> None:
    from honcho_grpc.server.auth import AuthConfigError, Claims, mint_token
    from honcho_grpc.server.servicers.key import check_scope
    from honcho_grpc.server.validate import Checker

    if args.keys_command == "secret":
        print(secrets.token_urlsafe(48))
        return
    claims = Claims(admin=args.admin, workspace=args.workspace or "", peer=args.peer or "",
                    session=args.session or "")
    checker = Checker()
    check_scope(checker, claims)
    if checker.violations:
        names = {"workspace_id": "--workspace", "peer_id": "--peer", "session_id": "--session",
                 "admin": "--admin"}
        sys.exit("honcho-grpc keys create: " + "; ".join(
            f"{names.get(v.field, v.field)}: {v.description}" for v in checker.violations))
    expires = datetime.now(UTC) + args.expires_in if args.expires_in else None
    try:
        token = mint_token(settings.auth.jwt_secret, claims, expires)
    except AuthConfigError as exc:
        sys.exit(f"honcho-grpc keys create: {exc}")
    if not settings.auth.use_auth:
        print("note: AUTH_USE_AUTH is false; the server does not check tokens until it is "
              "true", file=sys.stderr)
    print(token)


def _quiet_interrupt(func: Callable[..., None]) -> Callable[..., None]:
    """Ctrl-C ends a command without a traceback (`up` and `serve` stop gracefully on their
    own; this covers an interrupt during start-up and the other commands)."""
    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            func(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
    return wrapper


def _startup_errors() -> tuple[type[Exception], ...]:
    """Refusals at start-up that one line explains (no traceback)."""
    from honcho_grpc.db.embedded import EmbeddedPostgresError
    from honcho_grpc.db.pool import DatabaseConfigError
    from honcho_grpc.processes import PortInUseError

    return (EmbeddedPostgresError, DatabaseConfigError, PortInUseError)


@_quiet_interrupt
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
    keys = sub.add_parser("keys", help="issue API keys (JWTs signed with AUTH_JWT_SECRET)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser(
        "create", help="print a new key; the narrowest scope given wins",
        description="Print a JWT for the server's AUTH_JWT_SECRET. Scopes: --admin (every "
                    "call), --workspace (one workspace), --workspace with --peer (calls as "
                    "that peer and reads of its sessions), --workspace with --session (one "
                    "session).")
    create.add_argument("--workspace", help="workspace id")
    create.add_argument("--peer", help="peer id (needs --workspace)")
    create.add_argument("--session", help="session id (needs --workspace)")
    create.add_argument("--admin", action="store_true", help="an admin key (no other scope)")
    create.add_argument("--expires-in", type=parse_duration, default=None,
                        help="lifetime: seconds, or with a unit s/m/h/d/w (default: none)")
    keys_sub.add_parser("secret", help="print a random value for AUTH_JWT_SECRET")
    from honcho_grpc import importer

    load = sub.add_parser(
        "import", help="load a JSON or JSONL conversation export through ImportMessages",
        description=importer.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", type=Path, help="the export (.json array or .jsonl)")
    load.add_argument("--workspace", required=True, help="workspace id")
    load.add_argument("--session", required=True,
                      help="session id for messages that do not name one")
    load.add_argument("--address", default=None,
                      help="server host:port (default: SERVER_HOST:SERVER_PORT)")
    load.add_argument("--token", default=None, help="API key, when the server checks them")
    load.add_argument("--skip-invalid", action="store_true",
                      help="import the valid messages and report the others")
    load.add_argument("--chunk-size", type=_chunk_size, default=importer.CHUNK,
                      help=f"messages per stream message (1-{importer.MAX_CHUNK}, "
                           f"default {importer.CHUNK})")
    args = parser.parse_args(argv)
    settings = Settings()
    _setup_logging(settings)
    if args.command in ("serve", "up"):
        from honcho_grpc.providers.embeddings import EmbeddingDimensionError
        from honcho_grpc.server.auth import AuthConfigError

        refusals: tuple[type[Exception], ...] = (AuthConfigError, EmbeddingDimensionError,
                                                 *_startup_errors())
        try:
            if args.command == "serve":
                from honcho_grpc.server.app import serve

                asyncio.run(serve(settings))
            else:
                from honcho_grpc.supervisor import up

                asyncio.run(up(settings))
        except refusals as exc:
            sys.exit(f"honcho-grpc {args.command}: {exc}")
    elif args.command == "keys":
        _keys(settings, args)
    elif args.command == "import":
        address = args.address or f"{settings.server.host}:{settings.server.port}"
        sys.exit(importer.run(args.file, address, args.workspace, args.session, args.token,
                              args.skip_invalid, args.chunk_size))
    elif args.command == "worker":
        _worker(settings, args.retry_failed, args.workspace)
    elif args.command == "migrate":
        from honcho_grpc.db.embedded import DataDirInUseError

        try:
            asyncio.run(_migrate(settings, args.reset_embeddings))
        except DataDirInUseError as exc:
            sys.exit(f"honcho-grpc migrate: {exc} (`up` and `serve` apply migrations "
                     "themselves when they start)")
        except _startup_errors() as exc:
            sys.exit(f"honcho-grpc migrate: {exc}")


if __name__ == "__main__":
    main()
