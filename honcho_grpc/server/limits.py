"""Admission for long-lived calls: how many streams one workspace, and one bearer token, may
hold open at once (each kind of stream counted apart). A stream over the limit is refused at
once with RESOURCE_EXHAUSTED rather than queued, so a tenant that opens streams and goes
idle cannot crowd out the others (streams hold no pooled database connection while they
wait for the client; these limits bound what they do hold: memory, a concurrent-RPC slot).
One event loop serves every call, so plain counters need no lock."""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from honcho_grpc.errors import resource_exhausted


def bearer_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """A digest of the call's bearer token ("" without one): the token's identity, not the
    token itself, is what is counted and kept."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return hashlib.sha256(value.encode()).hexdigest()[:16]
    return ""


@dataclass
class StreamLimiter:
    per_workspace: int
    per_token: int
    open: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @contextlib.contextmanager
    def slot(self, kind: str, workspace_id: str, token: str) -> Iterator[None]:
        """Hold one `kind` stream for the workspace (and the token, when there is one)."""
        keys = [(kind, "workspace", workspace_id)]
        if token:
            keys.append((kind, "token", token))
        for key in keys:
            limit = self.per_workspace if key[1] == "workspace" else self.per_token
            if self.open[key] >= limit:
                raise resource_exhausted(
                    f"too many open {kind} streams for this {key[1]} (at most {limit}); close "
                    "one or retry later", "TOO_MANY_STREAMS", kind=kind, limit=str(limit))
        for key in keys:
            self.open[key] += 1
        try:
            yield
        finally:
            for key in keys:
                self.open[key] -= 1
                if not self.open[key]:
                    del self.open[key]
