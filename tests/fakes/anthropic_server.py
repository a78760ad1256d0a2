"""A local server speaking the Anthropic Messages wire protocol (`POST /v1/messages`): JSON
answers with text and tool_use blocks, SSE streams (message_start, content_block_start,
content_block_delta with text_delta or input_json_delta, content_block_stop, message_delta
with usage, message_stop; `event:` names included, a ping after the start), and
Anthropic-shaped error bodies."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.script import Reply, ScriptedServer, pieces


class FakeAnthropic(ScriptedServer):
    path = "/v1/messages"

    def base_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] \
            if reply.text else []
        content += [{"type": "tool_use", "id": cid, "name": name, "input": args}
                    for cid, name, args in reply.tool_calls]
        return {**self._envelope(body, reply.input_tokens, reply.output_tokens),
                "content": content, "stop_reason": _stop(reply)}

    def events(self, body: dict[str, Any], reply: Reply) -> list[bytes]:
        start = {**self._envelope(body, reply.input_tokens, 1), "content": [],
                 "stop_reason": None}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start},
                                        {"type": "ping"}]
        text = [{"type": "text_delta", "text": d} for d in reply.deltas()]
        blocks = [({"type": "text", "text": ""}, text)] if text or not reply.tool_calls else []
        blocks += [({"type": "tool_use", "id": cid, "name": name, "input": {}},
                    [{"type": "input_json_delta", "partial_json": p}
                     for p in pieces(json.dumps(args))])
                   for cid, name, args in reply.tool_calls]
        for index, (block, deltas) in enumerate(blocks):
            events.append({"type": "content_block_start", "index": index,
                           "content_block": block})
            events += [{"type": "content_block_delta", "index": index, "delta": d}
                       for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        events += [{"type": "message_delta",
                    "delta": {"stop_reason": _stop(reply), "stop_sequence": None},
                    "usage": {"output_tokens": reply.output_tokens}},
                   {"type": "message_stop"}]
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 404: "not_found_error",
                429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _envelope(self, body: dict[str, Any], input_tokens: int,
                  output_tokens: int) -> dict[str, Any]:
        return {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                "model": body["model"], "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def _stop(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")
