"""What the Dockerfile puts in the image, checked without a container engine (none on this
machine): its build stage copies a few paths and runs `pip install` on them (the generated
stubs' distribution and the service). Here the same paths are copied alone into a scratch
directory, built into wheels, installed on their own and started as the image would start
them (`honcho-grpc serve`, the embedded database, the bundled embedding model), then asked by
the image's own HEALTHCHECK command. A file that a package forgets (a migration, the
tokenizer, generated stubs) fails here, not in a deployment. Not covered: the base image, the
user switch, the image's size."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir
from tests.worker.test_up import alive

DOCKERFILE = ROOT / "Dockerfile"


def build_stage_copies() -> list[str]:
    """Sources of the COPY instructions of the first (build) stage."""
    stages = re.split(r"(?m)^FROM ", DOCKERFILE.read_text())
    sources: list[str] = []
    for line in stages[1].splitlines():
        words = shlex.split(line)
        if words and words[0] == "COPY" and not any(w.startswith("--") for w in words):
            sources += words[1:-1]
    return sources


def healthcheck_command(port: int) -> str:
    """The HEALTHCHECK's Python program, aimed at `port`."""
    text = DOCKERFILE.read_text().replace("\\\n", "")
    found = re.search(r'CMD python -c "(.*)"', text.split("HEALTHCHECK", 1)[1])
    assert found, "the Dockerfile has a python HEALTHCHECK"
    return found.group(1).replace("127.0.0.1:50051", f"127.0.0.1:{port}")


def build_stage_installs() -> list[str]:
    """The local paths the build stage's `pip install` installs (its options left out)."""
    stages = re.split(r"(?m)^FROM ", DOCKERFILE.read_text())
    for line in stages[1].splitlines():
        words = shlex.split(line)
        if words[:3] == ["RUN", "pip", "install"]:
            return [w for w in words[3:] if not w.startswith("-")]
    raise AssertionError("the build stage runs pip install")


@pytest.fixture(scope="module")
def installed() -> Path:
    """The build stage's sources, each distribution it installs built into a wheel and the
    wheels installed (without their dependencies, which the test's environment provides)
    into a directory of their own."""
    work = scratch_dir("honcho-image-")
    src = work / "src"
    src.mkdir()
    for name in build_stage_copies():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info", "build"))  # as .dockerignore
        else:
            shutil.copy2(path, src / name)
    for project in build_stage_installs():
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(work / "wheel"),
                        str(src / project)], check=True, cwd=work, capture_output=True)
    wheels = sorted(str(w) for w in (work / "wheel").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(work / "site"), *wheels],
                   check=True, cwd=work, capture_output=True)
    return work


def test_the_packages_carry_what_the_service_reads(installed: Path) -> None:
    (wheel,) = (installed / "wheel").glob("honcho_grpc-*.whl")
    (stubs,) = (installed / "wheel").glob("honcho_grpc_proto-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(ROOT).as_posix() for pattern in (
        "db/migrations/*.sql", "providers/minilm/*.json")
        for p in (ROOT / "honcho_grpc").glob(pattern)]
    assert needed and not set(needed) - names
    stubs_src = ROOT / "proto" / "python" / "src"
    generated = [p.relative_to(stubs_src).as_posix() for pattern in (
        "**/*_pb2.py", "**/*_pb2_grpc.py", "**/*.pyi", "**/py.typed")
        for p in stubs_src.glob(pattern)]
    assert generated and not set(generated) - set(zipfile.ZipFile(stubs).namelist())
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "honcho-grpc = honcho_grpc.cli:main" in zipfile.ZipFile(wheel).read(
        entry_points).decode()


def test_the_installed_service_starts_and_passes_the_healthcheck(installed: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(installed / "site"), "SERVER_PORT": str(port),
           "HTTP_PORT": "0", "SERVER_HOST": "127.0.0.1",
           "DB_DATA_DIR": str(installed / "data" / "pg"), "EMBEDDING_PROVIDER": "local",
           "APP_LOG_LEVEL": "WARNING"}
    for name in ("DB_CONNECTION_URI", "DATABASE_URL"):
        env.pop(name, None)
    where = subprocess.run([sys.executable, "-c", "import honcho_grpc, honcho_grpc_proto; "
                            "print(honcho_grpc.__file__, honcho_grpc_proto.__file__)"],
                           env=env, cwd=installed, capture_output=True, text=True, check=True)
    for path in where.stdout.split():  # not the checkout
        assert path.startswith(str(installed / "site")), where.stdout
    log = installed / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "serve"], env=env,
                                  cwd=installed, stdout=out, stderr=subprocess.STDOUT)
    try:
        # The image's HEALTHCHECK, retried as Docker would during the start period.
        deadline = time.monotonic() + 90
        healthy = False
        while not healthy and time.monotonic() < deadline and server.poll() is None:
            healthy = subprocess.run([sys.executable, "-c", healthcheck_command(port)],
                                     env=env, cwd=installed, timeout=30,
                                     capture_output=True).returncode == 0
            time.sleep(0.5)
        assert healthy, log.read_text()
    finally:
        server.terminate()
        server.wait(30)
    assert not alive(server.pid)
    shutil.rmtree(installed, ignore_errors=True)
