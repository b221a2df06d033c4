"""A runtime's streamed response, carried to its invocation as it arrives.

The Runtime API dispatches a streamed ``/response`` (``Lambda-Runtime-Function-Response-Mode:
streaming``) as soon as its headers are in; its body then arrives chunk by chunk through a
:class:`~lambdakit.emulator.http.BodyStream`, and its trailers may report an error
(``Lambda-Runtime-Function-Error-Type`` / ``-Error-Body``).
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Protocol

from lambdakit.emulator import runtime_api
from lambdakit.emulator.http import BodyStream, Response
from lambdakit.emulator.invocation import Invocation, InvocationResult, platform_error
from lambdakit.wire import errors, limits


class ResultTarget(Protocol):
    """The sandbox side: where a finished stream's result goes."""

    def runtime_result(self, request_id: str, result: InvocationResult) -> Response: ...

    def runtime_result_too_large(self, request_id: str, size: int, limit: int) -> Response: ...


class _Discard:
    """Swallows the body of a streamed response the Runtime API refused."""

    def body_chunk(self, data: bytes) -> None:
        pass

    def body_end(self, trailers: Mapping[str, str]) -> None:
        pass

    def body_abort(self) -> None:
        pass


class StreamRelay:
    """Carries a runtime's streamed response to its invocation as it arrives.

    With a stream sink (InvokeWithResponseStream, a Function URL) each chunk goes to the caller
    at once, and a caller that reads slowly pauses the runtime's connection (nothing piles up in
    memory); without one (a plain Invoke of a streaming function) the body is buffered up to the
    synchronous payload limit, as Lambda returns it whole.  The trailers decide the outcome; a
    connection that ends before the body does is ``Runtime.TruncatedResponse``.
    """

    def __init__(
        self,
        sandbox: ResultTarget,
        invocation: Invocation,
        content_type: str,
        stream: BodyStream,
        reply: asyncio.Future[Response],
    ) -> None:
        self._sandbox = sandbox
        self._invocation = invocation
        self._content_type = content_type
        self._stream = stream
        self._reply = reply
        self._sink = invocation.stream_sink
        self._limit = limits.MAX_SYNC_PAYLOAD if self._sink is None else limits.MAX_STREAMED_PAYLOAD
        self._started = False
        self._chunks: list[bytes] = []
        self._size = 0

    def body_chunk(self, data: bytes) -> None:
        if self._invocation.done:
            return  # timed out meanwhile
        self._size += len(data)
        if self._size > self._limit:
            return  # reported when the body ends
        if self._sink is None:
            self._chunks.append(data)
            return
        if not self._started:
            self._started = True
            self._sink.stream_start(self._content_type)
            self._sink.set_flow(self._stream.pause, self._stream.resume)
        self._sink.stream_chunk(data)

    def body_end(self, trailers: Mapping[str, str]) -> None:
        request_id = self._invocation.request_id
        if self._size > self._limit:
            response = self._sandbox.runtime_result_too_large(request_id, self._size, self._limit)
            self._answer(response)
            return
        result = runtime_api.trailer_error(trailers)
        if result is not None:
            result = dataclasses.replace(result, streamed=self._started)
        else:
            result = InvocationResult(
                b"".join(self._chunks), self._content_type, streamed=self._started
            )
        self._answer(self._sandbox.runtime_result(request_id, result))

    def body_abort(self) -> None:
        """The runtime's connection closed mid-body (RIE: ``Runtime.TruncatedResponse``)."""
        request_id = self._invocation.request_id
        result = platform_error(
            errors.RUNTIME_TRUNCATED_RESPONSE, request_id, "the runtime's response was truncated"
        )
        self._sandbox.runtime_result(
            request_id, dataclasses.replace(result, streamed=self._started)
        )
        self._answer(runtime_api.truncated())

    def _answer(self, response: Response) -> None:
        if not self._reply.done():
            self._reply.set_result(response)


#: Swallows the body of a streamed response the Runtime API refused.
DISCARD = _Discard()
