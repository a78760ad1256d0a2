"""DialecticService: Chat and StreamChat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from honcho_grpc_proto.v1 import dialectic_pb2 as pb
from honcho_grpc_proto.v1 import dialectic_pb2_grpc as rpc
from honcho_grpc_proto.v1 import resources_pb2

from honcho_grpc.domain import questions
from honcho_grpc.domain.dialectic import Answer, Question, stream_answer
from honcho_grpc.domain.response_format import schema_problem
from honcho_grpc.server.deps import Deps
from honcho_grpc.server.limits import bearer_of
from honcho_grpc.server.validate import boundary_options, checking

Ctx = grpc.aio.ServicerContext[Any, Any]
LEVEL_NAMES = {pb.REASONING_LEVEL_UNSPECIFIED: "low", pb.REASONING_LEVEL_MINIMAL: "minimal",
               pb.REASONING_LEVEL_LOW: "low", pb.REASONING_LEVEL_MEDIUM: "medium",
               pb.REASONING_LEVEL_HIGH: "high", pb.REASONING_LEVEL_MAX: "max"}
FINISH = {"stop": pb.FINISH_REASON_STOP, "length": pb.FINISH_REASON_MAX_TOKENS}


class DialecticServicer(rpc.DialecticServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _question(self, query: pb.ChatQuery) -> Question:
        with checking() as c:
            c.id("query.workspace_id", query.workspace_id)
            c.id("query.peer_id", query.peer_id)
            c.id("query.target_id", query.target_id, required=False)
            c.id("query.session_id", query.session_id, required=False)
            c.text("query.query", query.query, max_chars=questions.MAX_QUERY_CHARS)
            if query.reasoning_level not in LEVEL_NAMES:
                c.fail("query.reasoning_level", "is not a known reasoning level")
            schema = c.struct("query.response_format", query.response_format)
            problem = schema_problem(schema) if schema else None
            if problem:
                c.fail("query.response_format", problem)
            boundary_options(c, "query.", query.scope_ids, query.session_ids, query.session_id)
        return await questions.pose(
            self.deps.pool, query.workspace_id, query.peer_id, query.query,
            target=query.target_id, session_id=query.session_id,
            level=LEVEL_NAMES[query.reasoning_level], response_format=schema,
            scope_ids=list(query.scope_ids), session_ids=list(query.session_ids) or None)

    async def Chat(self, request: pb.ChatRequest, context: Ctx) -> pb.ChatResponse:
        q = await self._question(request.query)
        answer = Answer()
        parts = [p async for p in stream_answer(self.deps.pool, self.deps.embedder,
                                                self.deps.llm, q, answer)]
        return pb.ChatResponse(content="".join(parts), usage=_usage(answer),
                               conclusion_ids=answer.conclusion_ids)

    async def StreamChat(self, request: pb.StreamChatRequest,
                         context: Ctx) -> AsyncIterator[pb.StreamChatResponse]:
        q = await self._question(request.query)
        answer = Answer()
        # A client cancel or deadline raises CancelledError at the yield; closing the
        # generator below then closes the provider's stream at once.
        stream = stream_answer(self.deps.pool, self.deps.embedder, self.deps.llm, q, answer)
        with self.deps.streams.slot("chat", q.workspace_id, bearer_of(context)):
            try:
                async for piece in stream:
                    yield pb.StreamChatResponse(delta=pb.ChatDelta(content=piece))
            finally:
                await stream.aclose()
        yield pb.StreamChatResponse(completion=pb.ChatCompletion(
            finish_reason=FINISH.get(answer.finish_reason, pb.FINISH_REASON_STOP),
            usage=_usage(answer), conclusion_ids=answer.conclusion_ids))


def _usage(answer: Answer) -> resources_pb2.Usage:
    return resources_pb2.Usage(input_tokens=answer.input_tokens,
                               output_tokens=answer.output_tokens)



