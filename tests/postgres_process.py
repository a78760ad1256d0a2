"""A PostgreSQL that tests stop and start at will, run by a small launcher process.

Why a launcher: EmbeddedPostgres forks with a `preexec_fn` (parent-death signal), and forking
that way beside running gRPC threads can crash the child in CPython's after-fork handlers
(seen as a segfault in `threading._after_fork`). The launcher is a fresh process without
threads, so its fork is safe; ours is a plain spawn. Stopping closes the launcher's stdin:
it shuts PostgreSQL down fast (SIGINT) and exits, as it does if the test process dies.

    python -m tests.postgres_process DATA_DIR PORT   # prints the DSN once ready
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 20.0


@dataclass
class PostgresProcess:
    data_dir: Path
    port: int = 0
    dsn: str = ""
    launcher: subprocess.Popen[str] | None = field(default=None, repr=False)

    def start(self) -> str:
        """Start (initdb on first use) on `port` (chosen on first start); returns the DSN."""
        self.launcher = subprocess.Popen(
            [sys.executable, "-m", "tests.postgres_process", str(self.data_dir),
             str(self.port)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        assert self.launcher.stdout is not None
        line = self.launcher.stdout.readline().strip()
        if not line.startswith("postgresql://"):
            self.stop()
            raise RuntimeError(f"the PostgreSQL launcher failed: {line!r}")
        self.dsn = line
        self.port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        return self.dsn

    def stop(self) -> None:
        """Fast shutdown; returns once PostgreSQL has exited."""
        launcher, self.launcher = self.launcher, None
        if launcher is None:
            return
        assert launcher.stdin is not None
        launcher.stdin.close()
        try:
            launcher.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


def main(data_dir: str, port: str) -> None:
    from honcho_grpc.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(data_dir), port=int(port), fsync=False)
    try:
        print(pg.start(), flush=True)
        sys.stdin.read()  # until the parent closes it, or dies
    finally:
        pg.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])
