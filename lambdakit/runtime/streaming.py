"""Streaming a handler's response to the Runtime API, as it is produced.

Imported only when a handler returns a generator, an async generator or a
``@streamify_response`` call (``lambdakit.streaming.StreamingResponse``): never on the cold-start
path of other handlers.

The Runtime API contract (custom runtime guide, "Implementing response streaming"): ``POST
/response`` with ``Lambda-Runtime-Function-Response-Mode: streaming`` and a chunked body, the
error trailers declared up front in ``Trailer``.  The request starts at the first byte the
handler produces; each write is one chunk, sent at once.  How an error is reported depends on
whether that first byte went out:

- before it, the exception propagates to the runtime loop, which posts an ordinary ``/error``;
- after it, the body ends with the trailers ``Lambda-Runtime-Function-Error-Type`` (the
  exception's class name, as for ``/error``) and ``Lambda-Runtime-Function-Error-Body`` (base64
  of the usual error JSON), and the error is logged as any invocation error is.
"""

from __future__ import annotations

import binascii
import types

from lambdakit.runtime import logs
from lambdakit.runtime.client import PostRejected
from lambdakit.runtime.errors import (
    FaultError,
    ascii_header,
    is_user_error,
    report_exception,
    report_fault,
)
from lambdakit.runtime.transport import RuntimeApiError
from lambdakit.streaming import HttpPrelude, ResponseStream, StreamingResponse
from lambdakit.wire import errors
from lambdakit.wire import headers as h

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncGenerator, Generator, Sequence

    from lambdakit.runtime.client import NextEvent, RuntimeApiClient
    from lambdakit.runtime.errors import ErrorReport
    from lambdakit.runtime.transport import ChunkedUpload

_LOGGER = "lambdakit.runtime"
#: What a generator may yield besides an HttpPrelude (first).
_CHUNK_TYPES = (bytes, bytearray, memoryview, str)


class _Upload:
    """The ``/response`` request of one invocation, opened at the stream's first byte."""

    __slots__ = ("_client", "_invocation", "request")

    def __init__(self, client: RuntimeApiClient, invocation: NextEvent) -> None:
        self._client = client
        self._invocation = invocation
        self.request: ChunkedUpload | None = None

    def open(self, content_type: str) -> _Upload:
        self.request = self._client.start_streaming_response(self._invocation, content_type)
        return self

    def write(self, data: bytes) -> None:
        assert self.request is not None
        self.request.write(data)

    def finish(self, trailers: Sequence[tuple[str, str]]) -> None:
        assert self.request is not None
        self._client.finish_streaming_response(self.request, self._invocation, list(trailers))

    def abandon(self) -> None:
        """Cut the body off (the Runtime API then reports a truncated response)."""
        if self.request is not None:
            self.request.abandon()

    @property
    def broken(self) -> bool:
        """The connection failed mid-body: nothing more can be sent for this invocation."""
        return self.request is not None and self.request.finished


def stream_response(
    client: RuntimeApiClient, invocation: NextEvent, result: object, *, json_logs: bool
) -> None:
    """Drive ``result`` and stream what it produces; raises only before the first byte."""
    upload = _Upload(client, invocation)
    stream = ResponseStream(upload.open)
    try:
        _produce(result, stream)
    except BaseException as exc:
        if not is_user_error(exc) or not stream.started:
            raise  # nothing sent yet: an ordinary /error (or SystemExit and the like)
        _fail_mid_stream(exc, stream, upload, invocation, json_logs)
        return
    _end(stream, ())


def _fail_mid_stream(
    exc: BaseException,
    stream: ResponseStream,
    upload: _Upload,
    invocation: NextEvent,
    json_logs: bool,
) -> None:
    """End a started stream with the error trailers.  Nothing may escape from here: the upload's
    body is open, and any other request on that connection would corrupt it."""
    if upload.broken:
        _log().warning("streaming the response to the Runtime API failed: %s", exc)
        return
    try:
        report = report_fault(exc) if isinstance(exc, FaultError) else report_exception(exc)
        logs.write_error_report(report, invocation.request_id, json_logs=json_logs)
        if stream.closed:
            return  # the handler closed the stream, then failed: the caller has its response
        _end(stream, _error_trailers(report, invocation.request_id))
    except Exception:
        _log().exception("could not report the error of a streamed response; ending it")
        upload.abandon()


def _produce(result: object, stream: ResponseStream) -> None:
    if isinstance(result, types.GeneratorType):
        _drain(result, stream)
    elif isinstance(result, types.AsyncGeneratorType):
        from lambdakit.runtime import aio

        aio.run(_drain_async(result, stream))
    elif isinstance(result, StreamingResponse):
        value = result.handler(result.event, stream, result.context)
        if isinstance(value, types.CoroutineType):
            from lambdakit.runtime import aio

            aio.run(value)
    else:  # pragma: no cover - the runtime loop only passes the three kinds above
        raise TypeError(f"not a streaming result: {type(result).__name__}")


def _drain(generator: Generator[object, object, object], stream: ResponseStream) -> None:
    try:
        for item in generator:
            _write(stream, item)
    finally:
        generator.close()  # stops it if a write failed; a no-op once it is exhausted


async def _drain_async(generator: AsyncGenerator[object, object], stream: ResponseStream) -> None:
    try:
        async for item in generator:
            _write(stream, item)  # a blocking send on the loop: one invocation at a time
    finally:
        await generator.aclose()


def _write(stream: ResponseStream, item: object) -> None:
    if isinstance(item, _CHUNK_TYPES):
        stream.write(item)
    elif isinstance(item, HttpPrelude):
        stream.set_prelude(item)
    else:
        raise FaultError(
            errors.RUNTIME_MARSHAL_ERROR,
            "Unable to marshal response: a streaming handler must yield bytes or str, "
            f"not {type(item).__name__}",
        )


def _end(stream: ResponseStream, trailers: Sequence[tuple[str, str]]) -> None:
    try:
        stream._finish(trailers)
    except (PostRejected, RuntimeApiError) as exc:
        _log().warning("%s", exc)


def _error_trailers(report: ErrorReport, request_id: str) -> list[tuple[str, str]]:
    body = binascii.b2a_base64(report.body(request_id), newline=False).decode("ascii")
    return [(h.FUNCTION_ERROR_TYPE, ascii_header(report.error_type)), (h.FUNCTION_ERROR_BODY, body)]


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(_LOGGER)
