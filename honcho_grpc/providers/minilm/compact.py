"""A smaller-in-memory copy of the int8 MiniLM model, made once per machine and cached.

The model stores its weights as int8 with per-row scales, dequantised by Cast and Mul nodes
that onnxruntime folds into float32 constants at load time (fast inference, ~90 MB
resident). For the word-embedding table that is 30,522 x 384 floats, 47 MB, of which a query
reads a few rows. Here the table's Gather moves ahead of its dequantisation: the int8 rows
(and their scales) are gathered first, then cast and scaled, so the table stays int8
(11.7 MB) and each token costs 384 multiplications. The arithmetic per element is the same,
so the vectors are identical.

The rewrite needs the `onnx` package, whose import holds ~35 MB; it runs in a child process
(`python -m honcho_grpc.providers.minilm.compact SRC DST`), never in the server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

TABLE = "inner.embeddings.word_embeddings.weight"
REWRITE_VERSION = "1"  # bump when the rewrite changes: cached copies are then remade


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "honcho-grpc"


def _key(path: Path) -> str:
    """Names the copy after the source file as installed (path, size, time) and the
    rewrite: a reinstalled or upgraded model gets a new copy, and no start-up reads the
    whole file to find out."""
    stat = path.resolve().stat()
    what = f"{REWRITE_VERSION}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def compacted(source: Path, directory: Path | None = None) -> Path:
    """The compact copy of `source` (made now if missing), or `source` itself when it cannot
    be made (no `onnx`, a read-only cache, a model of another shape): slower to load, same
    vectors."""
    directory = directory or cache_dir()
    target = directory / f"minilm-int8-compact-{_key(source)}.onnx"
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([sys.executable, "-m", __name__, str(source), str(partial)],
                       check=True, capture_output=True, text=True, timeout=300)
        partial.replace(target)  # atomic: a concurrent starter sees all of it or nothing
        return target
    except (OSError, subprocess.SubprocessError) as exc:
        # A failed rewrite says why on its last line of stderr.
        lines = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        log.warning("using the model as shipped (its word table takes 35 MB more): %s",
                    lines[-1] if lines else type(exc).__name__)
        return source


def rewrite(source: Path, target: Path) -> None:
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    graph = model.graph
    by_output = {o: n for n in graph.node for o in n.output}
    mul = by_output[TABLE]
    cast = by_output[mul.input[0]]
    if mul.op_type != "Mul" or cast.op_type != "Cast":
        raise ValueError(f"unexpected dequantisation of {TABLE}: {cast.op_type}, {mul.op_type}")
    quantised, scale = cast.input[0], mul.input[1]
    gather = next(n for n in graph.node if n.op_type == "Gather" and n.input[0] == TABLE)
    ids, out = gather.input[1], gather.output[0]
    replacement = [
        helper.make_node("Gather", [quantised, ids], [f"{out}_q"], axis=0),
        helper.make_node("Gather", [scale, ids], [f"{out}_scale"], axis=0),
        helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out]),
    ]
    dropped = {cast.output[0], mul.output[0]}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.output[0] == out:
            nodes.extend(replacement)
        elif node.output[0] not in dropped:
            nodes.append(onnx.NodeProto.FromString(node.SerializeToString()))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]), Path(sys.argv[2]))
