"""One way to wrap a gRPC method handler, shared by every interceptor of the server.

grpc.aio gives an interceptor an `RpcMethodHandler` holding one of four behaviours
(unary-unary, unary-stream, stream-unary, stream-stream); to act on a call it must return a
new handler of the same arity, with the same serializers, around the old behaviour.
`wrap_handler` does that dispatch once; an interceptor says only what its wrapper does, given
the behaviour and its `Arity`. Two wrappers cover most needs: `before` (check or replace the
request before the servicer runs) and `within` (run the call inside a context manager).

A behaviour takes the request (a message, or an async iterator of messages when the client
streams) and the context. One that answers one response returns an awaitable of it; one that
answers a stream returns an async iterator of responses, or a coroutine that writes them with
`context.write` (`relay` reads both the same way).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
# (request or requests, context) -> see above. grpc's stubs type handlers for the sync API,
# so the arguments stay open.
Behavior = Callable[..., Any]
if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
Deserializer = Callable[[bytes], Any]


class Arity(NamedTuple):
    """Which sides of a call stream."""

    request_stream: bool
    response_stream: bool


Wrapper = Callable[[Behavior, Arity], Behavior]


def wrap_handler(handler: Handler, wrapper: Wrapper,
                 request_deserializer: Deserializer | None = None) -> Handler:
    """`handler` with its behaviour replaced by `wrapper(behaviour, arity)`; its request
    deserializer replaced too when one is given."""
    kwargs: dict[str, Any] = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrapper(handler.unary_unary, Arity(False, False)), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrapper(handler.unary_stream, Arity(False, True)), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrapper(handler.stream_unary, Arity(True, False)), **kwargs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(
            wrapper(handler.stream_stream, Arity(True, True)), **kwargs)
    return handler


async def relay(result: Any) -> AsyncIterator[Any]:
    """The responses of a stream behaviour's result, whether it yields them or writes them
    itself (then there is nothing to yield: it is awaited to the end)."""
    if inspect.isawaitable(result):
        await result
        return
    async for item in result:
        yield item


def before(message: Callable[[Any], Awaitable[Any]],
           messages: Callable[[AsyncIterator[Any]], Awaitable[AsyncIterator[Any]]]
           ) -> Wrapper:
    """A wrapper that hands the servicer `await message(request)` for a single request, or
    `await messages(requests)` for a client stream (awaited before the servicer starts; the
    iterator it returns may check each later message as it comes). For a server stream the
    check runs when the first response is asked for, as the servicer itself would."""

    def wrap(behavior: Behavior, arity: Arity) -> Behavior:
        prepare = messages if arity.request_stream else message
        if arity.response_stream:
            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                async for item in relay(behavior(await prepare(request), context)):
                    yield item

            return stream

        async def unary(request: Any, context: Context) -> Any:
            return await behavior(await prepare(request), context)

        return unary

    return wrap


def within(scope: Callable[[Context], AbstractContextManager[Any]]) -> Wrapper:
    """A wrapper that runs each call inside `scope(context)`; a stream's until its last
    response (or its failure, or its cancellation)."""

    def wrap(behavior: Behavior, arity: Arity) -> Behavior:
        if arity.response_stream:
            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                with scope(context):
                    async for item in relay(behavior(request, context)):
                        yield item

            return stream

        async def unary(request: Any, context: Context) -> Any:
            with scope(context):
                return await behavior(request, context)

        return unary

    return wrap


__all__ = ["Arity", "Behavior", "Context", "Wrapper", "before", "relay",
           "within", "wrap_handler"]
