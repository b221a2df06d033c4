"""The server side of the Runtime, Extensions and Telemetry APIs: routes calls to their sandbox.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html

Every sandbox listens on its own loopback port, given to its processes as
``AWS_LAMBDA_RUNTIME_API``, so a request needs no header to say which environment it comes
from.  This module only parses paths and bodies and renders the Runtime API's answers; what a
call *means* in the sandbox's current state is decided by the sandbox (:class:`RuntimeApiTarget`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Protocol

from lambdakit.emulator.http import Reply, Request, Response
from lambdakit.emulator.invocation import InvocationResult, function_error
from lambdakit.wire import errors, headers, limits, paths

_JSON = (("Content-Type", "application/json"),)
ACCEPTED = Response(202, _JSON, b'{"status":"OK"}')
_NOT_FOUND = Response(404, _JSON, errors.error_body("NotFound", "Unknown Runtime API path"))
_PONG = Response(200, (("Content-Type", "text/plain"),), b"pong")


class RuntimeApiTarget(Protocol):
    """What a sandbox offers its runtime."""

    def runtime_next(self) -> Reply: ...

    def runtime_result(self, request_id: str, result: InvocationResult) -> Response: ...

    def runtime_result_too_large(self, request_id: str, size: int, limit: int) -> Response: ...

    def runtime_init_error(self, result: InvocationResult) -> Response: ...

    def runtime_stream(self, request_id: str, request: Request) -> Reply: ...

    def extension_register(self, request: Request) -> Response: ...

    def extension_next(self, request: Request) -> Reply: ...

    def extension_error(self, request: Request, phase: str) -> Response: ...

    def telemetry_subscribe(self, request: Request, api: str) -> Response: ...


def runtime_error(status: int, error_type: str, message: str) -> Response:
    return Response(status, _JSON, errors.error_body(error_type, message))


def invalid_request_id() -> Response:
    return runtime_error(400, errors.INVALID_REQUEST_ID, "Invalid request ID")


def invalid_transition(current: str, wanted: str) -> Response:
    return runtime_error(
        403,
        errors.INVALID_STATE_TRANSITION,
        f"State transition from {current} to {wanted} failed for runtime. "
        "Error: State transition is not allowed",
    )


def payload_too_large(limit: int = limits.MAX_SYNC_PAYLOAD) -> Response:
    return runtime_error(
        413,
        errors.REQUEST_ENTITY_TOO_LARGE,
        f"Exceeded maximum allowed payload size ({limit} bytes).",
    )


def truncated() -> Response:
    return runtime_error(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")


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
            return self._target.runtime_next()
        if request.method == "POST":
            if path.startswith(paths.RUNTIME_INVOCATION_PREFIX):
                return self._invocation_post(request)
            if path == paths.RUNTIME_INIT_ERROR:
                return self._target.runtime_init_error(error_result(request))
        if path.startswith(paths.EXTENSION_PREFIX):
            return self._extension_call(request)
        if request.method == "PUT" and path in (paths.TELEMETRY, paths.LOGS):
            api = "telemetry" if path == paths.TELEMETRY else "logs"
            return self._target.telemetry_subscribe(request, api)
        if path == paths.PING:
            return _PONG
        return _NOT_FOUND

    def _extension_call(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path == paths.EXTENSION_NEXT and method == "GET":
            return self._target.extension_next(request)
        if method == "POST":
            if path == paths.EXTENSION_REGISTER:
                return self._target.extension_register(request)
            if path == paths.EXTENSION_INIT_ERROR:
                return self._target.extension_error(request, "init")
            if path == paths.EXTENSION_EXIT_ERROR:
                return self._target.extension_error(request, "exit")
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
                return self._target.runtime_stream(request_id, request)
            if request.body_too_large:
                return self._target.runtime_result_too_large(
                    request_id, request.body_size, limits.MAX_SYNC_PAYLOAD
                )
            failed = trailer_error(request.trailers)
            if failed is not None:
                return self._target.runtime_result(request_id, failed)
            # A buffered response is JSON to the caller whatever the runtime labelled it
            # (curl -d says form-urlencoded).
            content_type = "application/json"
            return self._target.runtime_result(
                request_id, InvocationResult(request.body, content_type)
            )
        if action == paths.ERROR_SUFFIX[1:]:
            return self._target.runtime_result(request_id, error_result(request))
        return _NOT_FOUND


def streams(path: str, request_headers: Mapping[str, str]) -> bool:
    """Dispatch streamed responses before their body: chunks go to the caller as they arrive."""
    mode = request_headers.get(headers.FUNCTION_RESPONSE_MODE)
    return (
        mode is not None
        and mode.lower() == "streaming"
        and path.startswith(paths.RUNTIME_INVOCATION_PREFIX)
        and path.endswith(paths.RESPONSE_SUFFIX)
    )


def trailer_error(trailers: Mapping[str, str]) -> InvocationResult | None:
    """The error a streamed response reported in its trailers, if any."""
    error_type = trailers.get(headers.FUNCTION_ERROR_TYPE)
    if not error_type:
        return None
    encoded = trailers.get(headers.FUNCTION_ERROR_BODY, "")
    try:
        body = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        body = b""
    if not _is_json_object(body):
        body = errors.error_body(error_type, error_type)
    return function_error(body, error_type)


def error_result(request: Request) -> InvocationResult:
    """An ``/error`` or ``/init/error`` post as the caller will see it.

    The body passes through when it is a JSON error object; otherwise Lambda builds one from
    ``Lambda-Runtime-Function-Error-Type`` (the Runtime API's documented fallback).
    """
    error_type = request.headers.get(headers.FUNCTION_ERROR_TYPE, "")
    body = request.body
    if not _is_json_object(body):
        body = errors.error_body(
            error_type or errors.RUNTIME_UNKNOWN, error_type or "Unknown error"
        )
    return function_error(body, error_type or _body_error_type(body))


def _is_json_object(body: bytes) -> bool:
    if not body.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _body_error_type(body: bytes) -> str:
    try:
        value = json.loads(body).get("errorType")
    except (ValueError, AttributeError):
        return errors.RUNTIME_UNKNOWN
    return value if isinstance(value, str) and value else errors.RUNTIME_UNKNOWN
