"""Function URLs: plain HTTP in, the payload format 2.0 event out, Lambda's rules back.

https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html

Each function with a URL port gets its own listener.  A request becomes the Function URL event
(``version`` 2.0: ``rawPath``, ``rawQueryString``, ``queryStringParameters``, ``headers``,
``cookies``, ``requestContext.http``, ``body``, ``isBase64Encoded``).  The function's result maps
back as Lambda maps it: a JSON object with ``statusCode`` gives that status, ``headers``,
``cookies`` (one ``Set-Cookie`` each) and ``body`` (base64-decoded when ``isBase64Encoded``);
anything else is a 200 JSON body.  A function error is a 502.  A streaming function's response
goes out as it arrives: with the HTTP-integration content type its first bytes are a JSON
prelude (status, headers, cookies) ended by 8 NUL bytes, then the body.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable

from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.doors.http_events import (
    HTTP_INTEGRATION,
    PRELUDE_END,
    Malformed,
    format2_event,
    format2_response,
    prelude_head,
)
from lambdakit.emulator.doors.tracking import InFlight, Submitted, submit_counted
from lambdakit.emulator.http import Reply, Request, Response, ResponseWriter, Streamed
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationRequest,
    InvocationResult,
    StreamSink,
    new_trace_id,
)
from lambdakit.emulator.pool import Pool

logger = logging.getLogger("lambdakit.url")

_MAX_PRELUDE = 16 * 1024
_JSON = (("Content-Type", "application/json"),)


def _message(status: int, message: str) -> Response:
    return Response(status, _JSON, json.dumps({"Message": message}).encode())


def url_event(request: Request, url_id: str, request_id: str, source_ip: str) -> bytes:
    """The payload format 2.0 event of one HTTP request."""
    return format2_event(
        request,
        request_id=request_id,
        api_id=url_id,
        domain_name=f"{url_id}.lambda-url.localhost",
        account_id="anonymous",
        source_ip=source_ip,
    )


def url_response(result: InvocationResult) -> Response:
    """A function's result as its Function URL answers it."""
    if result.function_error:
        return _message(502, "Internal Server Error")
    try:
        return format2_response(result)
    except Malformed:
        return _message(502, "Internal Server Error")


class FunctionUrl:
    """The request handler of one function's URL listener."""

    def __init__(
        self, service: ServiceConfig, function: FunctionConfig, pool: Pool, in_flight: InFlight
    ) -> None:
        self._pool = pool
        self._in_flight = in_flight
        self._arn = service.function_arn(function.name)
        self.url_id = uuid.uuid5(uuid.NAMESPACE_URL, function.name).hex[:32]

    def __call__(self, request: Request) -> Reply:
        if request.body_too_large:
            return _message(413, "Request must be smaller than 6291456 bytes")
        if not self._in_flight.accepting:
            return _message(503, "Service Unavailable")
        request_id = str(uuid.uuid4())
        payload = url_event(request, self.url_id, request_id, "127.0.0.1")
        relay = _UrlRelay(self._in_flight)
        invocation = Invocation(
            InvocationRequest(payload=payload, invoked_arn=self._arn, trace_id=new_trace_id()),
            relay.done,
            request_id,
            stream_sink=relay,
        )
        submitted = submit_counted(self._pool, self._in_flight, invocation)
        if submitted is Submitted.THROTTLED:
            return _message(429, "Rate Exceeded.")
        if submitted is Submitted.FAILED:
            return _message(500, "Internal Server Error")
        return Streamed(relay.attach)


class _UrlRelay(StreamSink):
    """Writes one invocation's result (buffered, or streamed with its prelude) to the client."""

    def __init__(self, in_flight: InFlight) -> None:
        self._in_flight = in_flight
        self._writer: ResponseWriter | None = None
        self._prelude: bytearray | None = None  # collecting an HTTP-integration prelude
        self._started = False

    def attach(self, writer: ResponseWriter) -> None:
        self._writer = writer

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        if self._writer is not None:
            self._writer.set_flow(pause, resume)

    def stream_start(self, content_type: str) -> None:
        if content_type.startswith(HTTP_INTEGRATION):
            self._prelude = bytearray()
        else:
            self._start(200, [("Content-Type", content_type)])

    def stream_chunk(self, data: bytes) -> None:
        if self._prelude is not None:
            self._prelude.extend(data)
            end = self._prelude.find(PRELUDE_END)
            if end < 0 and len(self._prelude) <= _MAX_PRELUDE:
                return
            if end < 0:  # no delimiter within 16 KB: no prelude after all, all of it is body
                prelude, rest = b"", bytes(self._prelude)
            else:
                prelude, rest = bytes(self._prelude[:end]), bytes(self._prelude[end + 8 :])
            self._prelude = None
            self._start_from_prelude(prelude)
            data = rest
        if data and self._writer is not None:
            self._writer.write(data)

    def _start_from_prelude(self, prelude: bytes) -> None:
        self._start(*prelude_head(prelude))

    def _start(self, status: int, fields: list[tuple[str, str]]) -> None:
        if not self._started and self._writer is not None:
            self._started = True
            self._writer.start(status, fields)

    def done(self, result: InvocationResult) -> None:
        self._in_flight.finished()
        writer = self._writer
        if writer is None:
            return
        if self._prelude is not None:  # the stream ended inside its prelude
            prelude = bytes(self._prelude)
            self._prelude = None
            self._start_from_prelude(prelude.split(PRELUDE_END, 1)[0])
        if not self._started:
            response = url_response(result)
            self._start(response.status, list(response.headers))
            writer.write(response.body)
        writer.finish()
