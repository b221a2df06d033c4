"""The server side of the Runtime, Extensions and Telemetry APIs: routes calls and renders outcomes.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html

Every sandbox listens on its own loopback port, given to its processes as
``AWS_LAMBDA_RUNTIME_API``, so a request needs no header to say which environment it comes
from.  This module parses paths and bodies, hands the sandbox events, and turns the typed
outcomes of :mod:`lambdakit.emulator.sandbox_machine` into the Runtime API's answers: it is the
only place where the Runtime API's HTTP is written.  What a call *means* in the environment's
current state is the sandbox's business (:class:`RuntimeApiTarget`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from lambdakit.emulator import runtime_results
from lambdakit.emulator.extension_registry import ExtensionRegistry
from lambdakit.emulator.http import Deferred, Reply, Request, Response
from lambdakit.emulator.http.codec import preencoded
from lambdakit.emulator.invocation import InvocationResult
from lambdakit.emulator.response_stream import DISCARD, StreamEnd, StreamRelay
from lambdakit.emulator.sandbox_machine import (
    Accepted,
    Delivered,
    Expired,
    Gone,
    Held,
    NextOutcome,
    ResultOutcome,
    UnknownRequest,
    WrongState,
)
from lambdakit.emulator.telemetry import TelemetryHub
from lambdakit.wire import errors, headers, limits, paths

_JSON = (("Content-Type", "application/json"),)
_ACCEPTED = preencoded(Response(202, _JSON, b'{"status":"OK"}'))
_NOT_FOUND = Response(404, _JSON, errors.error_body("NotFound", "Unknown Runtime API path"))
_PONG = Response(200, (("Content-Type", "text/plain"),), b"pong")
_GONE = Response(
    500,
    _JSON,
    errors.error_body("Runtime.Unknown", "Non-recoverable state. Runtime should exit promptly."),
)


class HeldNext:
    """A ``GET next`` held open until the sandbox delivers an event on it."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply = Deferred()

    @property
    def alive(self) -> bool:
        """False once its connection went away."""
        return self.reply.pending

    def deliver(self, delivered: Delivered) -> None:
        """The event goes out now (written on the caller's stack: no loop iteration between)."""
        self.reply.give(event_response(delivered))

    def cancel(self) -> None:
        self.reply.cancel()


class RuntimeApiTarget(Protocol):
    """What a sandbox offers its processes: events in, outcomes out."""

    def runtime_next(self, waiter: HeldNext) -> NextOutcome:
        """``GET next``; on :class:`Held` the sandbox keeps ``waiter`` to deliver on later."""
        ...

    def runtime_result(self, request_id: str, result: InvocationResult) -> ResultOutcome: ...

    def stream_started(self, request_id: str) -> ResultOutcome: ...

    def runtime_init_error(self, result: InvocationResult) -> Accepted | WrongState: ...

    @property
    def extensions(self) -> ExtensionRegistry:
        """The Extensions API of the environment."""
        ...

    @property
    def telemetry(self) -> TelemetryHub:
        """The Telemetry API of the environment."""
        ...


# Rendering ----------------------------------------------------------------------------------------
def runtime_error(status: int, error_type: str, message: str) -> Response:
    return Response(status, _JSON, errors.error_body(error_type, message))


def event_response(delivered: Delivered) -> Response:
    """The answer to ``GET next``: the event and its context headers."""
    invocation = delivered.invocation
    request = invocation.request
    fields = [
        ("Content-Type", "application/json"),
        (headers.REQUEST_ID, invocation.request_id),
        (headers.DEADLINE_MS, str(delivered.deadline_ms)),
        (headers.INVOKED_FUNCTION_ARN, request.invoked_arn),
        (headers.TRACE_ID, request.trace_id),
    ]
    if request.client_context:
        fields.append((headers.CLIENT_CONTEXT, request.client_context))
    if request.cognito_identity:
        fields.append((headers.COGNITO_IDENTITY, request.cognito_identity))
    if request.tenant_id:
        fields.append((headers.TENANT_ID, request.tenant_id))
    return Response(200, fields, request.payload)


def render(outcome: ResultOutcome | Gone) -> Response:
    """A refusal or an acceptance, as the Runtime API words it."""
    if isinstance(outcome, Accepted):
        return _ACCEPTED
    if isinstance(outcome, UnknownRequest):
        return runtime_error(400, errors.INVALID_REQUEST_ID, "Invalid request ID")
    if isinstance(outcome, Expired):
        return runtime_error(410, errors.INVOKE_TIMEOUT, "Invoke timeout")
    if isinstance(outcome, WrongState):
        return runtime_error(
            403,
            errors.INVALID_STATE_TRANSITION,
            f"State transition from {outcome.current} to {outcome.wanted} failed for runtime. "
            "Error: State transition is not allowed",
        )
    return _GONE


def payload_too_large(limit: int) -> Response:
    return runtime_error(
        413,
        errors.REQUEST_ENTITY_TOO_LARGE,
        f"Exceeded maximum allowed payload size ({limit} bytes).",
    )


def _truncated() -> Response:
    return runtime_error(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")


# Routing ------------------------------------------------------------------------------------------
class RuntimeApi:
    """The request handler of one sandbox's Runtime API listener."""

    __slots__ = ("_target",)

    def __init__(self, target: RuntimeApiTarget) -> None:
        self._target = target

    def __call__(self, request: Request) -> Reply:
        path = request.path
        if path == paths.RUNTIME_NEXT:
            if request.method != "GET":
                return _NOT_FOUND
            return self._next()
        if request.method == "POST":
            if path.startswith(paths.RUNTIME_INVOCATION_PREFIX):
                return self._invocation_post(request)
            if path == paths.RUNTIME_INIT_ERROR:
                return render(self._target.runtime_init_error(_posted_error(request)))
        if path.startswith(paths.EXTENSION_PREFIX):
            return self._extension_call(request)
        if request.method == "PUT" and path in (paths.TELEMETRY, paths.LOGS):
            if path == paths.LOGS and self._target.telemetry.managed:
                return _NOT_FOUND  # Managed Instances have no Logs API
            extension = self._target.extensions.lookup(request)
            if isinstance(extension, Response):
                return extension
            api = "telemetry" if path == paths.TELEMETRY else "logs"
            return self._target.telemetry.subscribe(request, extension.name, api)
        if path == paths.PING:
            return _PONG
        return _NOT_FOUND

    def _next(self) -> Reply:
        waiter = HeldNext()
        outcome = self._target.runtime_next(waiter)
        if isinstance(outcome, Held):
            return waiter.reply
        if isinstance(outcome, Delivered):
            return event_response(outcome)
        return render(outcome)

    def _extension_call(self, request: Request) -> Reply:
        path, method = request.path, request.method
        extensions = self._target.extensions
        if path == paths.EXTENSION_NEXT and method == "GET":
            return _GONE if extensions.closed else extensions.next(request)
        if method == "POST":
            if path == paths.EXTENSION_REGISTER:
                return extensions.register(request)
            if path == paths.EXTENSION_INIT_ERROR:
                return extensions.report_error(request, "init")
            if path == paths.EXTENSION_EXIT_ERROR:
                return extensions.report_error(request, "exit")
        return _NOT_FOUND

    def _invocation_post(self, request: Request) -> Reply:
        rest = request.path[len(paths.RUNTIME_INVOCATION_PREFIX) :]
        request_id, _, action = rest.partition("/")
        if action == paths.RESPONSE_SUFFIX[1:]:
            mode = request.headers.get(headers.FUNCTION_RESPONSE_MODE)
            if mode is not None and mode.lower() != "streaming":
                return runtime_error(
                    400, errors.INVALID_RESPONSE_MODE, f"Invalid response mode: {mode!r}"
                )
            if request.stream is not None:
                return self._stream(request_id, request)
            if request.body_too_large:
                return self._too_large(request_id, request.body_size)
            result = runtime_results.trailer_error(request.trailers)
            if result is None:
                # A buffered response is JSON to the caller whatever the runtime labelled it
                # (curl -d says form-urlencoded).
                result = InvocationResult(request.body, "application/json")
            return render(self._target.runtime_result(request_id, result))
        if action == paths.ERROR_SUFFIX[1:]:
            if request.body_too_large:
                return self._too_large(request_id, request.body_size)
            return render(self._target.runtime_result(request_id, _posted_error(request)))
        return _NOT_FOUND

    def _too_large(self, request_id: str, size: int) -> Response:
        """A ``/response`` or ``/error`` over the payload limit: the invocation fails, 413."""
        too_large = runtime_results.too_large(size, limits.MAX_SYNC_PAYLOAD)
        outcome = self._target.runtime_result(request_id, too_large)
        if isinstance(outcome, UnknownRequest | Expired):
            return render(outcome)
        return payload_too_large(limits.MAX_SYNC_PAYLOAD)

    def _stream(self, request_id: str, request: Request) -> Reply:
        """A streamed ``/response``: chunks go to the caller as they arrive."""
        stream = request.stream
        assert stream is not None
        outcome = self._target.stream_started(request_id)
        if not isinstance(outcome, Accepted) or outcome.invocation is None:
            stream.consume(DISCARD)
            return render(outcome)
        reply = Deferred()
        target = self._target

        def finish(result: InvocationResult, end: StreamEnd, limit: int) -> None:
            applied = target.runtime_result(request_id, result)
            if end is StreamEnd.TRUNCATED:
                response = _truncated()
            elif end is StreamEnd.TOO_LARGE and not isinstance(applied, UnknownRequest | Expired):
                response = payload_too_large(limit)
            else:
                response = render(applied)
            reply.give(response)

        content_type = request.headers.get("content-type") or "application/octet-stream"
        stream.consume(StreamRelay(outcome.invocation, content_type, stream, finish))
        return reply


def streams(path: str, request_headers: Mapping[str, str]) -> bool:
    """Dispatch streamed responses before their body: chunks go to the caller as they arrive."""
    mode = request_headers.get(headers.FUNCTION_RESPONSE_MODE)
    return (
        mode is not None
        and mode.lower() == "streaming"
        and path.startswith(paths.RUNTIME_INVOCATION_PREFIX)
        and path.endswith(paths.RESPONSE_SUFFIX)
    )


def _posted_error(request: Request) -> InvocationResult:
    return runtime_results.error_result(
        request.headers.get(headers.FUNCTION_ERROR_TYPE, ""), request.body
    )
