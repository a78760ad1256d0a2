"""A smaller-in-memory, faster copy of the int8 MiniLM model, made once per machine and cached.

The model stores its weights as int8 with per-row scales, dequantised by Cast and Mul nodes
that onnxruntime folds into float32 constants at load time (fast inference, ~90 MB
resident). For the word-embedding table that is 30,522 x 384 floats, 47 MB, of which a query
reads a few rows. Here the table's Gather moves ahead of its dequantisation: the int8 rows
(and their scales) are gathered first, then cast and scaled, so the table stays int8
(11.7 MB) and each token costs 384 multiplications. The arithmetic per element is the same,
so the vectors are identical.

With `quantized` (the default model), the matrix products also run in int8: the model as
shipped stores int8 weights but computes in float32 once they are dequantised. Here its
weights are folded to float32 (onnxruntime's basic, hardware-independent optimisation) and
quantised again by onnxruntime's own `quantize_dynamic`, per output channel, with each
activation quantised to uint8 as it comes. Measured on this 2-core Xeon (VNNI), one text a
call as LocalEmbedder runs it: bench texts 460 -> 964/s, LoCoMo turns 221 -> 678/s; vectors
agree with float compute to cosine 0.992 on average (0.94 at worst, LoCoMo turns), and LoCoMo
recall@10 held (0.773 / 0.786 -> 0.771 / 0.786). On x86 without VNNI, onnxruntime's uint8 x
int8 kernel can saturate; there the weights keep 7 bits (`reduce_range`), as onnxruntime
advises.

The rewrite needs the `onnx` package, whose import holds ~35 MB; it runs in a child process
(`python -m honcho_grpc.providers.minilm.compact SRC DST [--quantize] [--reduce-range]`),
never in the server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

TABLE = "inner.embeddings.word_embeddings.weight"
REWRITE_VERSION = "1"  # bump when the rewrite changes: cached copies are then remade
QUANTIZE_VERSION = "1"
# CPU flags of x86 integer dot-product instructions: with them, uint8 x int8 cannot saturate.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "honcho-grpc"


def _key(path: Path, variant: str) -> str:
    """Names the copy after the source file as installed (path, size, time), the rewrite
    and its variant: a reinstalled or upgraded model gets a new copy, and no start-up reads
    the whole file to find out."""
    stat = path.resolve().stat()
    what = f"{REWRITE_VERSION}:{variant}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(what.encode()).hexdigest()[:16]


def saturation_risk() -> bool:
    """Whether onnxruntime's uint8 x int8 products may saturate on this CPU: x86 without
    VNNI (or a CPU whose flags cannot be read, to be safe). Not a concern on ARM."""
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686", "x86"}:
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return not VNNI_FLAGS & set(flags)


def compacted(source: Path, directory: Path | None = None, *, quantized: bool = False) -> Path:
    """The compact copy of `source` (made now if missing; computing in int8 when
    `quantized`), or `source` itself when it cannot be made (no `onnx`, a read-only cache, a
    model of another shape): slower, and its vectors are those of float compute. The caller
    tells which it got by comparing the path with `source`."""
    directory = directory or cache_dir()
    reduce_range = quantized and saturation_risk()
    variant = (f"q{QUANTIZE_VERSION}{'r' if reduce_range else ''}" if quantized else "f")
    name = "minilm-int8-dynamic" if quantized else "minilm-int8-compact"
    target = directory / f"{name}-{_key(source, variant)}.onnx"
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        flags = (["--quantize"] if quantized else []) + (["--reduce-range"] if reduce_range
                                                         else [])
        subprocess.run([sys.executable, "-m", __name__, str(source), str(partial), *flags],
                       check=True, capture_output=True, text=True, timeout=300)
        partial.replace(target)  # atomic: a concurrent starter sees all of it or nothing
        return target
    except (OSError, subprocess.SubprocessError) as exc:
        # A failed rewrite says why on its last line of stderr.
        lines = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        log.warning("using the model as shipped (float compute; its word table takes 35 MB "
                    "more): %s", lines[-1] if lines else type(exc).__name__)
        return source


def rewrite(source: Path, target: Path, *, quantize: bool = False,
            reduce_range: bool = False) -> None:
    """The word-table rewrite; with `quantize`, then int8 matrix products."""
    if not quantize:
        _compact(source, target)
        return
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as scratch:
        compact, folded = Path(scratch) / "compact.onnx", Path(scratch) / "folded.onnx"
        _compact(source, compact)
        # Basic level: constant folding and the like, which any machine can run as saved.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(compact), options, providers=["CPUExecutionProvider"])
        quantize_dynamic(str(folded), str(target), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=reduce_range,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"MatMulConstBOnly": True})


def _compact(source: Path, target: Path) -> None:
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
    rewrite(Path(sys.argv[1]), Path(sys.argv[2]), quantize="--quantize" in sys.argv[3:],
            reduce_range="--reduce-range" in sys.argv[3:])
