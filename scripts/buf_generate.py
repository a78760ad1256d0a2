"""Run the plugins of buf.gen.yaml that write to one `out` directory, into another directory.

    python scripts/buf_generate.py build/gen/python /tmp/py    # the Python plugins
    python scripts/buf_generate.py build/gen/go /tmp/go        # the Go plugins

buf.gen.yaml names every language's generators; a machine may have only some of them (the
Go ones come from Debian's packages), so each language is generated on its own. The
selected plugins run with this interpreter's directory first on PATH (the venv, where
grpcio-tools and mypy-protobuf put their commands), from the repository root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "buf.gen.yaml"
BIN = Path(sys.executable).parent
BUF = BIN / "buf" if (BIN / "buf").exists() else Path("buf")  # the pinned buf-bin when present


def template_for(out: str, dest: Path) -> dict[str, Any]:
    """buf.gen.yaml reduced to the plugins writing to `out`, writing to `dest` instead."""
    template: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    plugins = [{**p, "out": str(dest)} for p in template["plugins"] if p["out"] == out]
    if not plugins:
        outs = sorted({p["out"] for p in template["plugins"]})
        raise SystemExit(f"no plugin of {TEMPLATE.name} writes to {out!r} (known: {outs})")
    return {**template, "plugins": plugins}


def generate(out: str, dest: Path, inputs: list[str] | None = None) -> None:
    """Generate into `dest` (created) from the template's inputs, or from `inputs`."""
    dest.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    command = [str(BUF), "generate", *(inputs or []),
               "--template", json.dumps(template_for(out, dest))]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"buf generate for {out} failed ({done.returncode})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    generate(sys.argv[1], Path(sys.argv[2]).resolve())
