"""A local server speaking the OpenAI chat-completions wire protocol (`POST /v1/chat/
completions`): JSON answers, SSE streams (`data: {chunk}` events ending with
`data: [DONE]`), tool calls (whole, or streamed as argument pieces), usage (in the last chunk
when `stream_options.include_usage` is asked), and OpenAI-shaped error bodies."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.script import Reply, ScriptedServer, pieces


class FakeOpenAI(ScriptedServer):
    path = "/v1/chat/completions"

    def base_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1"

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
