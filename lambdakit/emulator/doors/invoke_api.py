"""The Invoke API as boto3, the AWS CLI and curl call it.

https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html,
https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html

``POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=...]``: the name may be a
plain name, ``name:alias``, a partial ARN (``123456789012:function:name``) or a full ARN.
SigV4 ``Authorization`` headers are accepted without verification.  Function errors answer 200
with ``X-Amz-Function-Error``; service errors answer their status with a JSON body and
``x-amzn-ErrorType``, which botocore turns into the named exception.  ``InvocationType`` is
``RequestResponse`` (wait for the result), ``Event`` (stored durably by the event queue, 202 at
once) or ``DryRun`` (204 after validation).  The streaming variant answers
``application/vnd.amazon.eventstream``: a ``PayloadChunk`` per chunk the runtime streams, then
``InvokeComplete``.  ``GET`` under ``/2015-03-31/functions`` (ListFunctions, GetFunction,
GetFunctionConfiguration) is :mod:`lambdakit.emulator.doors.function_info`'s.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, unquote

from lambdakit.emulator.config import ServiceConfig
from lambdakit.emulator.doors.tracking import InFlight
from lambdakit.emulator.http import (
    Deferred,
    Handler,
    Reply,
    Request,
    Response,
    ResponseWriter,
    Streamed,
)
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationRequest,
    InvocationResult,
    StreamSink,
    new_request_id,
    new_trace_id,
)
from lambdakit.emulator.pool import Pool, Throttled
from lambdakit.wire import errors, eventstream, headers, limits, paths
from lambdakit.wire.client_context import decode_client_context, trace_header

logger = logging.getLogger("lambdakit.invoke")

# FunctionName as the API documents it: optional ARN prefix, name, optional qualifier.
_FUNCTION_NAME = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:[a-z]{2}(?:-gov)?-[a-z]+-\d{1}:)?(?:\d{12}:)?"
    r"(?:function:)?([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_JSON = "application/json"
_ALL_TYPES = (headers.REQUEST_RESPONSE, headers.EVENT, headers.DRY_RUN)
#: ListFunctions, GetFunction and GetFunctionConfiguration (GET) live under this path.
_READ_PREFIX = paths.INVOKE_PREFIX.rstrip("/")


def service_error(
    error_type: str, message: str, *extra_headers: tuple[str, str], **members: str
) -> Response:
    """A service error as Lambda returns it: status, JSON body and ``x-amzn-ErrorType``."""
    return Response(
        errors.SERVICE_ERROR_STATUS.get(error_type, 400),
        (("Content-Type", _JSON), (headers.ERROR_TYPE, error_type), *extra_headers),
        errors.service_error_body(message, **members),
    )


def throttled() -> Response:
    return service_error(
        errors.TOO_MANY_REQUESTS,
        "Rate Exceeded.",
        (headers.RETRY_AFTER, "1"),
        Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
    )


@functools.lru_cache(maxsize=1024)  # the same few names, on every invoke
def parse_function_name(raw: str) -> tuple[str, str] | None:
    """``(name, qualifier)`` from a FunctionName path segment, or None if malformed."""
    match = _FUNCTION_NAME.fullmatch(unquote(raw))  # not match: "$" passes a trailing newline
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


class EventAcceptor(Protocol):
    """The durable queue behind ``InvocationType: Event``."""

    def accept(self, function: str, request: InvocationRequest) -> str:
        """Store the event; return its request id once it is on disk."""
        ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """An invoke request that passed validation."""

    pool: Pool
    invocation_type: str
    request: InvocationRequest


#: The Invoke API's operations, as :func:`match_operation` names them.
INVOKE = "Invoke"
STREAM = "InvokeWithResponseStream"
ASYNC = "InvokeAsync"
INDEX = ("index", "")


def match_operation(request: Request) -> tuple[str, str] | None:
    """``(operation, raw function name)`` of a request, :data:`INDEX`, or None if unknown."""
    path = request.path
    for prefix, suffix, kind in (
        (paths.INVOKE_PREFIX, paths.INVOKE_SUFFIX, INVOKE),
        (paths.STREAMING_INVOKE_PREFIX, paths.STREAMING_INVOKE_SUFFIX, STREAM),
        (paths.INVOKE_ASYNC_PREFIX, paths.INVOKE_ASYNC_SUFFIX, ASYNC),
    ):
        trimmed = path.rstrip("/") if prefix == paths.INVOKE_ASYNC_PREFIX else path
        if trimmed.startswith(prefix) and trimmed.endswith(suffix):
            if request.method != "POST":
                return None
            return kind, trimmed[len(prefix) : -len(suffix)]
    if path == "/" and request.method == "GET":
        return INDEX
    return None


def unknown_operation(request: Request) -> Response:
    return service_error(
        "UnknownOperationException", f"Unknown operation {request.method} {request.path}"
    )


def as_event(request: Request) -> Request:
    """``request`` with ``X-Amz-Invocation-Type: Event`` (what InvokeAsync means)."""
    return Request(
        request.method,
        request.path,
        request.query,
        {**request.headers, headers.INVOCATION_TYPE: headers.EVENT},
        request.body,
        body_too_large=request.body_too_large,
        body_size=request.body_size,
    )


@dataclass(frozen=True, slots=True)
class InvokeCall:
    """An Invoke API request that passed validation, before anything decides where it runs."""

    name: str
    invocation_type: str
    request: InvocationRequest
    #: The AWS SDK's ``amz-sdk-invocation-id``, the same on each of its retries ("" if none).
    sdk_invocation_id: str = ""


def read_invoke(
    request: Request,
    raw_name: str,
    types: tuple[str, ...],
    operation: str,
    *,
    function_arn: Callable[[str], str],
    known: Container[str] | None,
    accepting: bool = True,
) -> InvokeCall | Response:
    """Validate an invoke request as Lambda does; the service error to answer if it fails.

    ``known`` holds the functions that exist (404 for others); None when another party
    decides that (the gateway, through the broker).
    """
    parsed = parse_function_name(raw_name)
    if parsed is None:
        return service_error(
            errors.INVALID_PARAMETER_VALUE,
            f"1 validation error detected: Value '{unquote(raw_name)}' at 'functionName' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern",
        )
    name, qualifier = parsed
    if request.query:
        qualifier = parse_qs(request.query).get("Qualifier", [""])[0] or qualifier
    arn = function_arn(name) + (f":{qualifier}" if qualifier else "")
    if (known is not None and name not in known) or qualifier not in ("", "$LATEST"):
        return service_error(errors.RESOURCE_NOT_FOUND, f"Function not found: {arn}")
    invocation_type = request.headers.get(headers.INVOCATION_TYPE, headers.REQUEST_RESPONSE)
    if invocation_type not in types:
        return service_error(
            errors.INVALID_PARAMETER_VALUE,
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
            "failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(sorted(types))}]",
        )
    event = invocation_type == headers.EVENT
    limit = limits.MAX_ASYNC_PAYLOAD if event else limits.MAX_SYNC_PAYLOAD
    if request.body_too_large or len(request.body) > limit:
        shown = limit - 100 if limit == limits.MAX_SYNC_PAYLOAD else limit
        return service_error(
            errors.REQUEST_TOO_LARGE,
            f"Request must be smaller than {shown} bytes for the {operation} operation",
        )
    payload = request.body or b"{}"
    if not _is_json(payload):
        return service_error(
            errors.INVALID_REQUEST_CONTENT,
            "Could not parse request body into json: Could not parse payload into json",
        )
    client_context = decode_client_context(request.headers.get(headers.AMZ_CLIENT_CONTEXT, ""))
    if client_context is None:
        return service_error(
            errors.INVALID_PARAMETER_VALUE,
            "Client context must be a valid Base64-encoded JSON object of at most "
            f"{limits.MAX_CLIENT_CONTEXT} bytes",
        )
    log_type = request.headers.get(headers.LOG_TYPE, "None")
    if log_type not in ("None", "Tail"):
        return service_error(
            errors.INVALID_PARAMETER_VALUE,
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [Tail, None]",
        )
    if not accepting:
        return service_error(errors.SERVICE_EXCEPTION, "The service is shutting down")
    return InvokeCall(
        name,
        invocation_type,
        InvocationRequest(
            payload=payload,
            invoked_arn=arn,
            client_context=client_context,
            tenant_id=request.headers.get(headers.AMZ_TENANT_ID, ""),
            trace_id=_trace_id(request.headers.get(headers.AMZN_TRACE_ID, "")),
            log_tail=log_type == "Tail" and invocation_type == headers.REQUEST_RESPONSE,
        ),
        request.headers.get(headers.SDK_INVOCATION_ID, ""),
    )


class InvokeApi:
    """The request handler of the Invoke API listener."""

    def __init__(
        self,
        service: ServiceConfig,
        pools: Mapping[str, Pool],
        in_flight: InFlight,
        events: EventAcceptor | None = None,
    ) -> None:
        self._service = service
        self._pools = pools
        self.events = events
        self._arns = {name: service.function_arn(name) for name in pools}
        self._in_flight = in_flight
        self._started = in_flight.started
        self._finished = in_flight.finished

    @functools.cached_property
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The loop the service runs on (built before it, so looked up on first use)."""
        return asyncio.get_running_loop()

    # Routing ------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Reply:
        operation = match_operation(request)
        if operation == INDEX:
            return _index(self._pools)
        if operation is None:
            if request.method == "GET" and request.path.startswith(_READ_PREFIX):
                return self._function_info(request)
            return unknown_operation(request)
        kind, raw_name = operation
        handler = {INVOKE: self._invoke, STREAM: self._invoke_stream, ASYNC: self._invoke_async}
        return handler[kind](request, raw_name)

    @functools.cached_property
    def _function_info(self) -> Handler:
        """ListFunctions, GetFunction, GetFunctionConfiguration (``doors/function_info.py``)."""
        from lambdakit.emulator.doors.function_info import FunctionInfo

        return FunctionInfo(self._service)

    # Validation -----------------------------------------------------------------------------------
    def _accept(
        self, request: Request, raw_name: str, types: tuple[str, ...], operation: str
    ) -> Accepted | Response:
        call = read_invoke(
            request,
            raw_name,
            types,
            operation,
            function_arn=self._service.function_arn,
            known=self._pools,
            accepting=self._in_flight.accepting,
        )
        if isinstance(call, Response):
            return call
        return Accepted(self._pools[call.name], call.invocation_type, call.request)

    # Invoke --------------------------------------------------------------------------------------
    def _invoke(self, request: Request, raw_name: str) -> Reply:
        accepted = self._accept(request, raw_name, _ALL_TYPES, "InvokeFunction")
        if isinstance(accepted, Response):
            return accepted
        if accepted.invocation_type == headers.DRY_RUN:
            return Response(204, ((headers.AMZN_REQUEST_ID, new_request_id()),))
        if accepted.invocation_type == headers.EVENT:
            return self._enqueue(accepted, Response(202, (("Content-Type", _JSON),)))
        reply = Deferred()
        request_id = new_request_id()
        version = accepted.pool.function.version

        def done(result: InvocationResult) -> None:
            if reply.pending:  # else the caller went away; the invocation still ran
                reply.give(buffered_response(result, request_id, version))
            self._finished()  # after the answer left: bookkeeping is not the caller's wait

        refused = self._submit(Invocation(accepted.request, done, request_id), accepted.pool)
        return refused or reply

    def _invoke_stream(self, request: Request, raw_name: str) -> Reply:
        types = (headers.REQUEST_RESPONSE, headers.DRY_RUN)
        accepted = self._accept(request, raw_name, types, "InvokeWithResponseStream")
        if isinstance(accepted, Response):
            return accepted
        if accepted.invocation_type == headers.DRY_RUN:
            return Response(204, ((headers.AMZN_REQUEST_ID, new_request_id()),))
        request_id = new_request_id()
        relay = EventStreamReply(request_id, accepted.pool.function.version, self._finished)
        invocation = Invocation(accepted.request, relay.done, request_id, stream_sink=relay)
        refused = self._submit(invocation, accepted.pool)
        return refused or Streamed(relay.attach)

    def _invoke_async(self, request: Request, raw_name: str) -> Reply:
        """The deprecated InvokeAsync API: an Event invocation answering ``{"Status": 202}``."""
        forced = as_event(request)
        accepted = self._accept(forced, raw_name, (headers.EVENT,), "InvokeAsync")
        if isinstance(accepted, Response):
            return accepted
        return self._enqueue(
            accepted, Response(202, (("Content-Type", _JSON),), b'{"Status": 202}')
        )

    def _enqueue(self, accepted: Accepted, answer: Response) -> Response:
        if self.events is None:
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                "Event invocations need the event queue, which is not running",
            )
        try:
            request_id = self.events.accept(accepted.pool.function.name, accepted.request)
        except OSError as exc:
            return service_error(errors.SERVICE_EXCEPTION, f"could not store the event: {exc}")
        return Response(
            answer.status, (*answer.headers, (headers.AMZN_REQUEST_ID, request_id)), answer.body
        )

    def _submit(self, invocation: Invocation, pool: Pool) -> Response | None:
        """Hand ``invocation`` to its pool; the 429 to answer if it is full."""
        self._started()
        try:
            pool.submit(invocation)
        except Throttled:
            self._finished()
            return throttled()
        except Exception as exc:  # a bug or an environment problem: answer, never hang
            logger.exception("could not start invocation %s", invocation.request_id)
            self._finished()
            return service_error(errors.SERVICE_EXCEPTION, f"could not start the invocation: {exc}")
        return None


def buffered_response(result: InvocationResult, request_id: str, version: str) -> Response:
    """An invocation's result as the synchronous Invoke API answers it."""
    fields = [
        ("Content-Type", result.content_type if not result.function_error else _JSON),
        (headers.AMZN_REQUEST_ID, request_id),
        (headers.EXECUTED_VERSION, version),
    ]
    if result.function_error:
        fields.append((headers.FUNCTION_ERROR, result.function_error))
    if result.log_result:
        fields.append((headers.LOG_RESULT, result.log_result))
    return Response(200, fields, result.body)


class EventStreamReply(StreamSink):
    """Writes one streamed invocation as ``application/vnd.amazon.eventstream`` frames."""

    def __init__(self, request_id: str, version: str, finished: Callable[[], None]) -> None:
        self._request_id = request_id
        self._version = version
        self._finished = finished
        self._writer: ResponseWriter | None = None

    def attach(self, writer: ResponseWriter) -> None:
        self._writer = writer

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        if self._writer is not None:
            self._writer.set_flow(pause, resume)

    def _start(self, function_error: str = "") -> ResponseWriter:
        writer = self._writer
        assert writer is not None, "the HTTP layer attaches the writer before any event"
        fields = [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            (headers.AMZN_REQUEST_ID, self._request_id),
            (headers.EXECUTED_VERSION, self._version),
        ]
        if function_error:
            fields.append((headers.FUNCTION_ERROR, function_error))
        writer.start(200, fields)
        return writer

    def stream_start(self, content_type: str) -> None:
        self._start()

    def stream_chunk(self, data: bytes) -> None:
        writer = self._start()
        for frame in eventstream.encode_payload_chunks(data):
            writer.write(frame)

    def done(self, result: InvocationResult) -> None:
        self._finished()
        writer = self._start(result.function_error)
        if not result.streamed and result.body and not result.function_error:
            for frame in eventstream.encode_payload_chunks(result.body):  # a buffered response
                writer.write(frame)
        complete = eventstream.InvokeComplete(log_result=result.log_result or None)
        if result.function_error:
            complete = eventstream.InvokeComplete(
                result.error_type or errors.RUNTIME_UNKNOWN,
                _error_message(result.body),
                result.log_result or None,
            )
        writer.write(complete.encode())
        writer.finish()


def _error_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("errorMessage", "")
    except (ValueError, RecursionError, AttributeError):
        return body.decode("utf-8", "replace")
    return str(message)


def _trace_id(header: str) -> str:
    """The caller's ``X-Amzn-Trace-Id`` if it is well formed, else a fresh one."""
    return trace_header(header) or new_trace_id()


def _is_json(payload: bytes) -> bool:
    """UTF-8 JSON, as Lambda takes it (decoded first: ``json.loads`` of bytes sniffs encodings)."""
    try:
        json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; nesting too deep
        return False
    return True


def _index(pools: Mapping[str, Pool]) -> Response:
    body = json.dumps({"functions": sorted(pools)}).encode()
    return Response(200, (("Content-Type", _JSON),), body)
