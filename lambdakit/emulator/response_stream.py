"""A runtime's streamed response, carried to its invocation as it arrives.

The Runtime API dispatches a streamed ``/response`` (``Lambda-Runtime-Function-Response-Mode:
streaming``) as soon as its headers are in; its body then arrives chunk by chunk through a
:class:`~lambdakit.emulator.http.BodyStream`, and its trailers may report an error
(``Lambda-Runtime-Function-Error-Type`` / ``-Error-Body``).
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming

:class:`StreamRelay` only moves the body and works out the result; what the result does to the
environment, and what the runtime is answered, is its ``finish`` callback's business (the
Runtime API router's).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping

from lambdakit.emulator import runtime_results
from lambdakit.emulator.http import BodyStream
from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.wire import limits


class StreamEnd(enum.Enum):
    """How a streamed body ended."""

    COMPLETE = "complete"
    TOO_LARGE = "too-large"
    TRUNCATED = "truncated"


#: Called once with the result of the stream, how it ended and the payload limit that applied.
Finish = Callable[[InvocationResult, StreamEnd, int], None]


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

    __slots__ = (
        "_chunks",
        "_content_type",
        "_finish",
        "_invocation",
        "_limit",
        "_sink",
        "_size",
        "_started",
        "_stream",
    )

    def __init__(
        self, invocation: Invocation, content_type: str, stream: BodyStream, finish: Finish
    ) -> None:
        self._invocation = invocation
        self._content_type = content_type
        self._stream = stream
        self._finish = finish
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
        if self._size > self._limit:
            self._finish(
                runtime_results.too_large(self._size, self._limit), StreamEnd.TOO_LARGE, self._limit
            )
            return
        result = runtime_results.trailer_error(trailers)
        if result is not None:
            result = dataclasses.replace(result, streamed=self._started)
        else:
            result = InvocationResult(
                b"".join(self._chunks), self._content_type, streamed=self._started
            )
        self._finish(result, StreamEnd.COMPLETE, self._limit)

    def body_abort(self) -> None:
        """The runtime's connection closed mid-body (RIE: ``Runtime.TruncatedResponse``)."""
        result = runtime_results.truncated(self._invocation.request_id)
        self._finish(
            dataclasses.replace(result, streamed=self._started), StreamEnd.TRUNCATED, self._limit
        )


#: Swallows the body of a streamed response the Runtime API refused.
DISCARD = _Discard()
