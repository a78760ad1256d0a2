"""`honcho-grpc status | memory | reset`: look at a running server through its public gRPC API
(health, GetQueueStatus, the list RPCs, peer cards, summaries), and wipe the local embedded
database. Every failure is one line on stderr."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import (
    conclusion_pb2,
    conclusion_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    resources_pb2,
    session_pb2,
    session_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from honcho_grpc.settings import Settings

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,512}")  # as the server's (server/validate.py)
CALL_TIMEOUT = 10.0
HEALTH_TIMEOUT = 3.0
PAGE = 100
COUNT_CAP = 1000  # peers/sessions counted per workspace: beyond, "1000+"
MAX_WORKSPACES = 1000
QUEUE_STATES = ("pending", "in_progress", "completed", "failed")

Run = Callable[[Settings, argparse.Namespace], int]
R = TypeVar("R")


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit status `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- arguments --------------------------------------------------------------------------------


def id_arg(text: str) -> str:
    if not ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an id (1-512 characters of letters, digits, '_' or '-')")
    return text


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="server host:port (default: HONCHO_ADDRESS, else "
                             "SERVER_HOST:SERVER_PORT)")
    parser.add_argument("--token", default=None,
                        help="API key when the server checks them (default: HONCHO_API_KEY)")


def register(sub: Any) -> None:
    """Add the commands to the CLI's subparsers; each sets `run`."""
    status = sub.add_parser(
        "status", help="health, database, queue and counts of a running server",
        description="Ask a running server (over gRPC) for its health, whether its database "
                    "answers, the background queue per state and the peers and sessions per "
                    "workspace. Listing every workspace needs an admin key when auth is on; "
                    "--workspace looks at one.")
    _connection(status)
    status.add_argument("--workspace", type=id_arg, default=None, help="only this workspace")
    status.add_argument("--limit", type=int, default=10,
                        help="workspaces shown in the table, newest first (default 10)")
    status.set_defaults(run=status_command)

    memory = sub.add_parser("memory", help="what the worker derived: conclusions, peer "
                                           "cards, session summaries")
    kinds = memory.add_subparsers(dest="memory_command", required=True)
    conclusions = kinds.add_parser("conclusions", help="conclusions an observer holds")
    conclusions.add_argument("--workspace", type=id_arg, required=True)
    conclusions.add_argument("--observer", type=id_arg, required=True,
                             help="the peer holding the conclusions")
    conclusions.add_argument("--observed", type=id_arg, default=None,
                             help="the peer they are about (default: every peer)")
    conclusions.add_argument("--session", type=id_arg, default=None, help="only this session")
    conclusions.add_argument("--limit", type=int, default=50, help="newest first (default 50)")
    conclusions.set_defaults(run=conclusions_command)
    card = kinds.add_parser("card", help="the peer card one peer keeps about another")
    card.add_argument("--workspace", type=id_arg, required=True)
    card.add_argument("--peer", type=id_arg, required=True, help="whose card it is")
    card.add_argument("--target", type=id_arg, default=None,
                      help="the peer it is about (default: --peer itself)")
    card.set_defaults(run=card_command)
    summary = kinds.add_parser("summary", help="a session's short and long summaries")
    summary.add_argument("--workspace", type=id_arg, required=True)
    summary.add_argument("--session", type=id_arg, required=True)
    summary.set_defaults(run=summary_command)
    for parser in (conclusions, card, summary):
        _connection(parser)

    reset = sub.add_parser(
        "reset", help="delete the local embedded database (DB_DATA_DIR)",
        description="Remove the embedded PostgreSQL's data directory (DB_DATA_DIR) and with "
                    "it every workspace, message and conclusion stored there. Refused while "
                    "a PostgreSQL runs on it, and for an external database (DB_CONNECTION_URI).")
    reset.add_argument("--yes", action="store_true", help="really delete (else: say what)")
    reset.set_defaults(run=reset_command)


# --- talking to a server ----------------------------------------------------------------------


def server_address(settings: Settings, given: str | None) -> str:
    if given:
        return given
    if env := os.environ.get("HONCHO_ADDRESS"):
        return env
    host = settings.server.host
    # A server listening on every interface is reached on loopback.
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
    return f"{host}:{settings.server.port}"


@dataclass
class Remote:
    """A channel to the server and the caller's key, sent with every call."""

    address: str
    token: str | None
    channel: grpc.Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.address)

    def close(self) -> None:
        self.channel.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def call(self, method: Callable[..., R], request: Any) -> R:
        return method(request, metadata=self.metadata, timeout=CALL_TIMEOUT)

    def check_serving(self) -> str:
        """The server's health status name; a one-line CommandError when nothing answers."""
        health = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT)
        except grpc.RpcError as err:
            code = err.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise CommandError(
                    f"no honcho-grpc server answers on {self.address} (start one with "
                    "`make run` or `honcho-grpc up`; elsewhere: --address or HONCHO_ADDRESS)"
                ) from None
            raise CommandError(f"{self.address}: health check failed: {describe(err)}") from None
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def describe(err: grpc.RpcError) -> str:
    code = err.code().name
    details = err.details() or ""
    if code == "UNAUTHENTICATED":
        details += " (the server checks keys: pass --token or set HONCHO_API_KEY)"
    return f"{code}: {details}"


def pages(fetch: Callable[[str], tuple[list[R], str]], cap: int) -> tuple[list[R], bool]:
    """Items of a listing, page after page, up to `cap`; True when more were left."""
    items: list[R] = []
    token = ""
    while True:
        batch, token = fetch(token)
        items.extend(batch)
        if not token:
            return items[:cap], len(items) > cap
        if len(items) >= cap:
            return items[:cap], True


def _connect(settings: Settings, args: argparse.Namespace) -> tuple[Remote, str]:
    """A channel to a server that answers, and its health status."""
    remote = Remote(server_address(settings, args.address),
                    args.token or os.environ.get("HONCHO_API_KEY") or None)
    try:
        return remote, remote.check_serving()
    except CommandError:
        remote.close()
        raise


# --- status -----------------------------------------------------------------------------------


@dataclass
class WorkspaceRow:
    workspace_id: str
    peers: str
    sessions: str
    queue: resources_pb2.QueueCounts
    embedding: workspace_pb2.EmbeddingBacklog


def _workspace_ids(remote: Remote, only: str | None) -> tuple[list[str], bool]:
    stub = workspace_pb2_grpc.WorkspaceServiceStub(remote.channel)
    if only:
        remote.call(stub.GetWorkspace, workspace_pb2.GetWorkspaceRequest(workspace_id=only))
        return [only], False

    def fetch(token: str) -> tuple[list[str], str]:
        reply = remote.call(stub.ListWorkspaces, workspace_pb2.ListWorkspacesRequest(
            page_size=PAGE, page_token=token, reverse=True))
        return [w.id for w in reply.workspaces], reply.next_page_token

    return pages(fetch, MAX_WORKSPACES)


def _count(fetch: Callable[[str], tuple[list[Any], str]]) -> str:
    items, more = pages(fetch, COUNT_CAP)
    return f"{len(items)}+" if more else str(len(items))


def _workspace_row(remote: Remote, ws: str, counted: bool) -> WorkspaceRow:
    status = remote.call(workspace_pb2_grpc.WorkspaceServiceStub(remote.channel).GetQueueStatus,
                         workspace_pb2.GetQueueStatusRequest(workspace_id=ws))
    queue, embedding = status.totals, status.embedding
    if not counted:
        return WorkspaceRow(ws, "", "", queue, embedding)
    peers = peer_pb2_grpc.PeerServiceStub(remote.channel)
    sessions = session_pb2_grpc.SessionServiceStub(remote.channel)

    def peer_page(token: str) -> tuple[list[Any], str]:
        reply = remote.call(peers.ListPeers, peer_pb2.ListPeersRequest(
            workspace_id=ws, page_size=PAGE, page_token=token))
        return list(reply.peers), reply.next_page_token

    def session_page(token: str) -> tuple[list[Any], str]:
        reply = remote.call(sessions.ListSessions, session_pb2.ListSessionsRequest(
            workspace_id=ws, page_size=PAGE, page_token=token))
        return list(reply.sessions), reply.next_page_token

    return WorkspaceRow(ws, _count(peer_page), _count(session_page), queue, embedding)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]


def status_command(settings: Settings, args: argparse.Namespace) -> int:
    remote, health = _connect(settings, args)
    serving = health == "SERVING"
    try:
        print(f"server      {remote.address}  {health}")
        try:
            ids, more = _workspace_ids(remote, args.workspace)
        except grpc.RpcError as err:
            print(f"database    {_database_problem(err)}")
            not_allowed = err.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                         grpc.StatusCode.PERMISSION_DENIED)
            return 0 if serving and not_allowed else 1
        print("database    reachable")
        rows = [_workspace_row(remote, ws, i < args.limit) for i, ws in enumerate(ids)]
        _print_status(rows, more, args.limit)
        return 0 if serving else 1
    except grpc.RpcError as err:  # the server went away or failed between two calls
        raise CommandError(describe(err)) from None
    finally:
        remote.close()


def _database_problem(err: grpc.RpcError) -> str:
    code = err.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return ("not checked: listing workspaces needs an admin key (--token or "
                "HONCHO_API_KEY), or name one with --workspace")
    if code == grpc.StatusCode.NOT_FOUND:
        return f"reachable; {err.details()}"
    return f"not answering ({describe(err)})"


def _print_status(rows: list[WorkspaceRow], more: bool, limit: int) -> None:
    totals = {s: sum(getattr(r.queue, s) for r in rows) for s in QUEUE_STATES}
    print(f"workspaces  {len(rows)}{'+' if more else ''}")
    print("queue       " + " · ".join(f"{s.replace('_', ' ')} {totals[s]}"
                                      for s in QUEUE_STATES))
    unembedded = sum(r.embedding.pending for r in rows)
    oldest = max((_age(r.embedding) for r in rows), default=0.0)
    print(f"embedding   pending {unembedded} · oldest {_seconds(oldest)}")
    shown = rows[:limit]
    if not shown:
        return
    print()
    header = ["workspace", "peers", "sessions", "pending", "in progress", "completed", "failed",
              "unembedded", "oldest"]
    cells = [[r.workspace_id, r.peers, r.sessions,
              *(str(getattr(r.queue, s)) for s in QUEUE_STATES),
              str(r.embedding.pending), _seconds(_age(r.embedding))] for r in shown]
    print("\n".join(table(header, cells)))
    if len(rows) > len(shown):
        print(f"... and {len(rows) - len(shown)}{'+' if more else ''} more workspaces "
              "(--limit, --workspace)")


def _age(backlog: workspace_pb2.EmbeddingBacklog) -> float:
    return float(backlog.oldest_age.ToTimedelta().total_seconds())


def _seconds(age: float) -> str:
    """How long the oldest unembedded message has waited: `-` when none waits."""
    return f"{age:.1f}s" if age > 0 else "-"


# --- memory -----------------------------------------------------------------------------------


def _with_remote(settings: Settings, args: argparse.Namespace,
                 body: Callable[[Remote], int]) -> int:
    remote, _ = _connect(settings, args)
    try:
        return body(remote)
    except grpc.RpcError as err:
        raise CommandError(describe(err)) from None
    finally:
        remote.close()


def _level(value: resources_pb2.ConclusionLevel.ValueType) -> str:
    return resources_pb2.ConclusionLevel.Name(value).removeprefix("CONCLUSION_LEVEL_").lower()


def conclusions_command(settings: Settings, args: argparse.Namespace) -> int:
    def body(remote: Remote) -> int:
        peers = peer_pb2_grpc.PeerServiceStub(remote.channel)
        for peer in {args.observer, args.observed} - {None}:
            remote.call(peers.GetPeer, peer_pb2.GetPeerRequest(workspace_id=args.workspace,
                                                               peer_id=peer))
        filters = struct_pb2.Struct()
        filters.update({k: v for k, v in (("observer_id", args.observer),
                                          ("observed_id", args.observed),
                                          ("session_id", args.session)) if v})
        stub = conclusion_pb2_grpc.ConclusionServiceStub(remote.channel)

        def fetch(token: str) -> tuple[list[Any], str]:
            reply = remote.call(stub.ListConclusions, conclusion_pb2.ListConclusionsRequest(
                workspace_id=args.workspace, filters=filters, page_size=PAGE,
                page_token=token))
            return list(reply.conclusions), reply.next_page_token

        found, more = pages(fetch, max(args.limit, 1))
        about = f" about {args.observed}" if args.observed else ""
        if not found:
            print(f"{args.observer} holds no conclusions{about} yet (the worker derives them "
                  "after messages; `honcho-grpc status` shows its queue)")
            return 0
        print(f"conclusions of {args.observer}{about} ({len(found)}{'+' if more else ''}, "
              "newest first)")
        for c in found:
            subject = "" if args.observed else f"{c.observed_id}: "
            print(f"- [{_level(c.level)}] {subject}{c.content}")
        return 0

    return _with_remote(settings, args, body)


def card_command(settings: Settings, args: argparse.Namespace) -> int:
    def body(remote: Remote) -> int:
        target = args.target or args.peer
        reply = remote.call(peer_pb2_grpc.PeerServiceStub(remote.channel).GetPeerCard,
                            peer_pb2.GetPeerCardRequest(workspace_id=args.workspace,
                                                        peer_id=args.peer, target_id=target))
        whose = f"{args.peer}'s card" + ("" if target == args.peer else f" about {target}")
        if not reply.exists:
            print(f"{whose}: none yet")
            return 0
        print(f"{whose} ({len(reply.entries)} entries)")
        for entry in reply.entries:
            print(f"- {entry}")
        return 0

    return _with_remote(settings, args, body)


def summary_command(settings: Settings, args: argparse.Namespace) -> int:
    def body(remote: Remote) -> int:
        reply = remote.call(session_pb2_grpc.SessionServiceStub(remote.channel).GetSummaries,
                            session_pb2.GetSummariesRequest(workspace_id=args.workspace,
                                                            session_id=args.session))
        for name, present, summary in (
                ("short", reply.HasField("short_summary"), reply.short_summary),
                ("long", reply.HasField("long_summary"), reply.long_summary)):
            if not present:
                print(f"== {name} summary: none yet")
                continue
            print(f"== {name} summary (up to message {summary.last_message_sequence}, "
                  f"{summary.token_count} tokens)")
            print(summary.content)
        return 0

    return _with_remote(settings, args, body)


# --- reset ------------------------------------------------------------------------------------


def _running_postgres(data_dir: Path) -> int | None:
    """The pid of a live PostgreSQL on `data_dir` (its postmaster.pid), else None."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):  # none, or unreadable: rmtree will say if it cannot delete
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # a stale file left by a crash
        return None
    except PermissionError:  # alive, another user's (as root, postgres runs as `nobody`)
        return pid
    return pid


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in _files(path))


def _files(path: Path) -> Iterator[Path]:
    for root, _, names in os.walk(path):
        for name in names:
            candidate = Path(root, name)
            if candidate.is_file() and not candidate.is_symlink():
                yield candidate


def reset_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.db.uri():
        raise CommandError("reset deletes only the embedded database; DB_CONNECTION_URI (or "
                           "DATABASE_URL) names an external PostgreSQL: drop its data there",
                           code=2)
    data_dir = settings.db.data_dir.resolve()
    if not data_dir.exists():
        print(f"nothing to reset: {data_dir} does not exist")
        return 0
    if not (data_dir / "PG_VERSION").is_file():
        raise CommandError(f"{data_dir} is not a PostgreSQL data directory (no PG_VERSION); "
                           "not deleting it (check DB_DATA_DIR)")
    pid = _running_postgres(data_dir)
    if pid is not None:
        raise CommandError(f"a PostgreSQL (pid {pid}) is running on {data_dir}: stop "
                           "`honcho-grpc up` / `make run` first")
    if not args.yes:
        print(f"would delete {data_dir} ({_size(data_dir) / 1e6:.0f} MB): every workspace, "
              "message and conclusion stored there; run again with --yes")
        return 1
    try:
        shutil.rmtree(data_dir)
    except OSError as exc:
        raise CommandError(f"could not delete {data_dir}: {exc.strerror}") from None
    print(f"deleted {data_dir}; the next `make run` starts an empty database")
    return 0


def run(command: Run, settings: Settings, args: argparse.Namespace) -> None:
    """Run a command of this module and exit with its status (one line on failure)."""
    try:
        code = command(settings, args)
    except BrokenPipeError:  # `honcho-grpc memory ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except CommandError as exc:
        name = " ".join(filter(None, (args.command, getattr(args, "memory_command", None))))
        print(f"honcho-grpc {name}: {exc}", file=sys.stderr)
        code = exc.code
    sys.exit(code)
