"""A local server speaking the OpenAI wire protocol, for every test and benchmark that needs
an OpenAI-compatible provider.

- `POST /v1/chat/completions` (scripted, see `ScriptedServer`): JSON answers, SSE streams
  (`data: {chunk}` events ending with `data: [DONE]`), tool calls (whole, or streamed as
  argument pieces), usage (in the last chunk when `stream_options.include_usage` is asked),
  and OpenAI-shaped error bodies.
- `POST /v1/embeddings` as OpenAI answers it: `data` of `{object, index, embedding}` (floats,
  or base64 little-endian float32 when `encoding_format` is `base64`, which the SDK asks for,
  unless `floats_only` plays a compatible server that ignores it), `model` and `usage`.
  Models named `text-embedding-3-*` honour `dimensions`; others answer `native_dimensions`
  and `text-embedding-ada-002` refuses `dimensions` with a 400, as OpenAI does; an empty
  input string is a 400 too. Vectors (`vector`) are deterministic and deliberately not unit
  length, and `data` comes back in reverse order: a client must order by `index`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from tests.fakes.http import Exchange
from tests.fakes.script import Reply, ScriptedServer, pieces


class FakeOpenAI(ScriptedServer):
    path = "/v1/chat/completions"
    embeddings_path = "/v1/embeddings"

    def __init__(self, chunk_delay: float = 0.0) -> None:
        super().__init__(chunk_delay)
        self.native_dimensions = 384
        self.floats_only = False

    def base_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1"

    def routes(self) -> dict[str, Callable[[Exchange], Awaitable[None]]]:
        return {**super().routes(), self.embeddings_path: self._embeddings}

    @staticmethod
    def vector(text: str, size: int) -> list[float]:
        """The embedding of `text`: a random normal vector seeded by its hash, times 3."""
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return [float(x) * 3 for x in np.random.default_rng(seed).standard_normal(size)]

    async def _embeddings(self, exchange: Exchange) -> None:
        status, payload = self.embeddings(exchange.request.body)
        await exchange.send_json(status, payload)

    def embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = body["model"]
        if model == "text-embedding-ada-002" and "dimensions" in body:
            return 400, self.error_body(400, "This model does not support specifying "
                                             "dimensions.")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if any(t == "" for t in inputs):
            return 400, self.error_body(400, "'$.input' is invalid.")
        size = body.get("dimensions") if model.startswith("text-embedding-3") else None
        size = size or self.native_dimensions
        data = []
        for index, text in enumerate(inputs):
            vec = self.vector(text, size)
            value: Any = vec
            if body.get("encoding_format") == "base64" and not self.floats_only:
                value = base64.b64encode(np.array(vec, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(t.split()) for t in inputs)
        return 200, {"object": "list", "data": data[::-1], "model": model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        calls = [{"id": cid, "type": "function",
                  "function": {"name": name, "arguments": json.dumps(args)}}
                 for cid, name, args in reply.tool_calls]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": _finish(reply)}],
                "usage": _usage(reply)}

    def events(self, body: dict[str, Any], reply: Reply) -> list[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": d}) for d in reply.deltas()]
        for index, (cid, name, args) in enumerate(reply.tool_calls):
            chunks.append(chunk({"tool_calls": [{"index": index, "id": cid, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                       for p in pieces(json.dumps(args))]
        chunks.append(chunk({}, _finish(reply)))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"choices": [], "usage": _usage(reply)})
        head = {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion.chunk",
                "created": 0, "model": body["model"]}
        events = [f"data: {json.dumps({**head, 'usage': None, **c})}\n\n".encode()
                  for c in chunks]
        return [*events, b"data: [DONE]\n\n"]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status,
                                                                              "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _usage(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens}
