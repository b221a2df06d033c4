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
from lambdakit.emulator.http import Response
from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.wire import limits


class ResultTarget(Protocol):
    """The sandbox side: where a finished stream's result goes."""

    def runtime_result(self, request_id: str, result: InvocationResult) -> Response: ...

    def runtime_result_too_large(self, request_id: str, size: int) -> Response: ...


class _Discard:
    """Swallows the body of a streamed response the Runtime API refused."""

    def body_chunk(self, data: bytes) -> None:
        pass

    def body_end(self, trailers: Mapping[str, str]) -> None:
        pass


class StreamRelay:
    """Carries a runtime's streamed response to its invocation as it arrives.

    With a stream sink (InvokeWithResponseStream, a Function URL) each chunk goes to the caller
    at once; without one (a plain Invoke of a streaming function) the body is buffered up to
    the synchronous payload limit, as Lambda returns it whole.  The trailers decide the outcome.
    """

    def __init__(
        self,
        sandbox: ResultTarget,
        invocation: Invocation,
        content_type: str,
        reply: asyncio.Future[Response],
    ) -> None:
        self._sandbox = sandbox
        self._invocation = invocation
        self._content_type = content_type
        self._reply = reply
        self._sink = invocation.stream_sink
        self._started = False
        self._chunks: list[bytes] = []
        self._size = 0

    def body_chunk(self, data: bytes) -> None:
        if self._invocation.done:
            return  # timed out meanwhile
        self._size += len(data)
        if self._sink is None:
            if self._size <= limits.MAX_SYNC_PAYLOAD:
                self._chunks.append(data)
            return
        if not self._started:
            self._started = True
            self._sink.stream_start(self._content_type)
        self._sink.stream_chunk(data)

    def body_end(self, trailers: Mapping[str, str]) -> None:
        request_id = self._invocation.request_id
        result = runtime_api.trailer_error(trailers)
        if result is not None:
            result = dataclasses.replace(result, streamed=self._started)
        elif self._sink is None and self._size > limits.MAX_SYNC_PAYLOAD:
            self._sandbox.runtime_result_too_large(request_id, self._size)
            result = None
        else:
            result = InvocationResult(
                b"".join(self._chunks), self._content_type, streamed=self._started
            )
        response = (
            self._sandbox.runtime_result(request_id, result)
            if result is not None
            else runtime_api.ACCEPTED
        )
        if not self._reply.done():
            self._reply.set_result(response)


#: Swallows the body of a streamed response the Runtime API refused.
DISCARD = _Discard()
