"""What a runtime's ``/response``, ``/error`` and ``/init/error`` mean to the caller.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-invokeerror and
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming

Pure functions from what the runtime sent to :class:`InvocationResult`: an error body passes
through when it is a JSON object, otherwise Lambda builds one from
``Lambda-Runtime-Function-Error-Type``; a streamed response reports errors in its trailers; a
response over the payload limit or cut off mid-body becomes the platform's error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from lambdakit.emulator.invocation import InvocationResult, function_error, platform_error
from lambdakit.wire import errors, headers


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


def error_result(error_type: str, body: bytes) -> InvocationResult:
    """An ``/error`` or ``/init/error`` post, as the caller will see it."""
    if not _is_json_object(body):
        body = errors.error_body(
            error_type or errors.RUNTIME_UNKNOWN, error_type or "Unknown error"
        )
    return function_error(body, error_type or _body_error_type(body))


def too_large(size: int, limit: int) -> InvocationResult:
    """A response over the payload limit."""
    detail = (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({limit} bytes)."
    )
    return function_error(
        errors.error_body(errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE, detail),
        errors.FUNCTION_RESPONSE_SIZE_TOO_LARGE,
    )


def truncated(request_id: str) -> InvocationResult:
    """A streamed response whose connection ended before its body did."""
    return platform_error(
        errors.RUNTIME_TRUNCATED_RESPONSE, request_id, "the runtime's response was truncated"
    )


def _is_json_object(body: bytes) -> bool:
    if not body.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, RecursionError):  # nested deeper than the parser goes
        return False


def _body_error_type(body: bytes) -> str:
    try:
        value = json.loads(body).get("errorType")
    except (ValueError, RecursionError, AttributeError):
        return errors.RUNTIME_UNKNOWN
    return value if isinstance(value, str) and value else errors.RUNTIME_UNKNOWN
