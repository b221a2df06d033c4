"""CORS as API Gateway applies an API's settings: preflight answers and response headers.

https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html

An HTTP API with CORS settings answers every preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) itself, 204 with the configured headers when the origin is
allowed, and on every other response replaces the CORS headers the function set with its own.
A REST API's ``Cors`` (as SAM sets it up: an ``OPTIONS`` method with a mock integration on each
path) answers preflights to its paths with 200 and the configured headers; its other responses
carry what the function returns.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from lambdakit.emulator.api_routes import Cors
from lambdakit.emulator.http import Response

_PREFIX = "access-control-"
_REQUEST_METHOD = "access-control-request-method"


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """A browser's CORS preflight: ``OPTIONS`` with ``Origin`` and the method it will use."""
    return method == "OPTIONS" and "origin" in headers and _REQUEST_METHOD in headers


def allowed_origin(cors: Cors, origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``; None if it is not allowed."""
    for pattern in cors.allow_origins:
        if pattern == "*":
            return origin if cors.allow_credentials else "*"
        if pattern == origin or ("*" in pattern and fnmatch.fnmatchcase(origin, pattern)):
            return origin
    return None


def preflight(
    cors: Cors, headers: Mapping[str, str], status: int, methods: Iterable[str]
) -> Response:
    """The answer to a preflight: ``status`` (204 HTTP API, 200 REST) with the CORS headers
    when the origin is allowed; ``methods`` stand in for unset ``allow_methods``."""
    fields: list[tuple[str, str]] = []
    origin = allowed_origin(cors, headers.get("origin", ""))
    if origin is not None:
        fields.append(("Access-Control-Allow-Origin", origin))
        allow_methods = cors.allow_methods or tuple(methods)
        if allow_methods:
            fields.append(("Access-Control-Allow-Methods", ",".join(allow_methods)))
        if cors.allow_headers:
            fields.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
        if cors.max_age is not None:
            fields.append(("Access-Control-Max-Age", str(cors.max_age)))
        if cors.allow_credentials:
            fields.append(("Access-Control-Allow-Credentials", "true"))
    if origin != "*":
        fields.append(("Vary", "Origin"))
    return Response(status, fields)


def with_cors(
    cors: Cors, origin: str | None, fields: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """A response's headers as an HTTP API with CORS sends them: the function's CORS headers
    replaced by the API's, for an allowed ``Origin``."""
    kept = [(name, value) for name, value in fields if not name.lower().startswith(_PREFIX)]
    allowed = allowed_origin(cors, origin) if origin else None
    if allowed is not None:
        kept.append(("Access-Control-Allow-Origin", allowed))
        if cors.allow_credentials:
            kept.append(("Access-Control-Allow-Credentials", "true"))
        if cors.expose_headers:
            kept.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return kept
