"""Running `honcho-grpc` as a user does: a child process in a folder of its own, with only the
settings a test gives in its environment; or in a thread, against the in-process server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from honcho_grpc.cli import main
from honcho_grpc.settings import ENV_NAMES, OTHER_NAMES


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any honcho setting, plus `values`."""
    ours = ENV_NAMES | OTHER_NAMES
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    return {**env, **values}


def honcho(*args: str, cwd: Path, timeout: float = 60,
           **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "honcho_grpc.cli", *args], cwd=cwd,
                          env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (fails the test when there are more)."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


async def run_cli(*argv: str) -> int:
    """The CLI in a thread of this process (it uses a blocking channel; an in-process server
    runs on this loop); its exit status."""
    def call() -> int:
        try:
            main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return await asyncio.to_thread(call)
