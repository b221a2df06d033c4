"""HTTP requests as Lambda events, Lambda results as HTTP responses: payload formats 1.0, 2.0.

https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html

Function URLs and HTTP APIs send the 2.0 event (``rawPath``, ``rawQueryString``, ``cookies``,
``headers`` with repeated fields joined by commas, ``queryStringParameters`` joined the same
way, ``requestContext.http``) and read a 2.0 response: an object with ``statusCode`` gives that
status, ``headers``, ``cookies`` (a ``Set-Cookie`` each) and ``body`` (base64-decoded when
``isBase64Encoded``); any other JSON value is a 200 with that JSON as an ``application/json``
body.  REST APIs, and HTTP API routes that ask for it, send the 1.0 event (``resource``,
``path``, ``httpMethod``, ``headers`` and ``multiValueHeaders``, ``queryStringParameters`` and
``multiValueQueryStringParameters``, ``pathParameters``, ``stageVariables``, ``requestContext``
with ``resourcePath``, ``stage`` and ``identity``) and need a 1.0 response: an object with
``statusCode`` and optionally ``headers``, ``multiValueHeaders``, ``body`` and
``isBase64Encoded``; anything else is malformed, and the caller answers its own error for it.

A body is sent as text when it is UTF-8 of a textual content type (or, for a REST API, of a type
not among its binary media types), else base64 with ``isBase64Encoded``.  A buffered response of
a streaming function (content type ``application/vnd.awslambda.http-integration-response``) is
its JSON prelude (status, headers, cookies), 8 NUL bytes, then the body.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl

from lambdakit.emulator.http import Request, Response
from lambdakit.emulator.invocation import InvocationResult
from lambdakit.wire import headers as wire_headers

HTTP_INTEGRATION = wire_headers.HTTP_INTEGRATION_CONTENT_TYPE
PRELUDE_END = wire_headers.HTTP_INTEGRATION_DELIMITER
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)
_JSON_TYPE = "application/json"
#: The fields a 1.0 response may have; any other makes it malformed.
_FORMAT_1_FIELDS = frozenset(
    ("statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies")
)


# --- the request's parts --------------------------------------------------------------------------
def header_lists(request: Request) -> dict[str, list[str]]:
    """Every value of every header field (names lower case)."""
    repeated = request.repeated_headers
    return {
        name: list(repeated[name]) if name in repeated else [value]
        for name, value in request.headers.items()
    }


def joined_headers(request: Request) -> dict[str, str]:
    """The headers of a 2.0 event: repeated fields joined by commas, without ``cookie``."""
    repeated = request.repeated_headers
    return {
        name: ",".join(repeated[name]) if name in repeated else value
        for name, value in request.headers.items()
        if name != "cookie"
    }


def request_cookies(request: Request) -> list[str]:
    values = request.repeated_headers.get("cookie") or [request.headers.get("cookie", "")]
    return [part.strip() for value in values for part in value.split(";") if part.strip()]


def query_lists(query: str) -> dict[str, list[str]]:
    """The query string's parameters, URL-decoded, each with all of its values."""
    parameters: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parameters.setdefault(key, []).append(value)
    return parameters


def is_text(content_type: str) -> bool:
    return any(kind in content_type for kind in _TEXT_TYPES)


def media_type_matches(content_type: str, patterns: Iterable[str]) -> bool:
    """Whether a media type (parameters ignored) is one of ``patterns`` (``image/*``, ``*/*``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return bool(media) and any(fnmatch.fnmatchcase(media, p.lower()) for p in patterns)


def event_body(request: Request, binary: bool | None = None) -> tuple[str, bool]:
    """(body, isBase64Encoded): text when the body is UTF-8 and not ``binary``.

    ``binary`` None: decided by the content type, as Function URLs and HTTP APIs do.
    """
    if binary is None:
        binary = bool(request.body) and not is_text(request.headers.get("content-type", ""))
    if not binary:
        try:
            return request.body.decode(), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode(), True


def request_time(now: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``, as API Gateway writes a request's time."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


# --- events ---------------------------------------------------------------------------------------
def format2_event(
    request: Request,
    *,
    request_id: str,
    api_id: str,
    domain_name: str,
    account_id: str,
    source_ip: str,
    route_key: str = "$default",
    path_parameters: Mapping[str, str] | None = None,
) -> bytes:
    """The payload format 2.0 event of one HTTP request (Function URLs, HTTP APIs)."""
    headers = joined_headers(request)
    cookies = request_cookies(request)
    query = {key: ",".join(values) for key, values in query_lists(request.query).items()}
    body, encoded = event_body(request)
    now = time.time()
    event: dict[str, object] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if request.body:
        event["body"] = body
    return json.dumps(event).encode()


def format1_event(
    request: Request,
    *,
    request_id: str,
    api_id: str,
    domain_name: str,
    account_id: str,
    source_ip: str,
    resource: str,
    stage: str,
    path_parameters: Mapping[str, str],
    binary_media_types: Sequence[str] | None,
    route_key: str | None = None,
) -> bytes:
    """The payload format 1.0 event: a REST API's (``route_key`` None) or an HTTP API's.

    ``binary_media_types``: the REST API's, which decide whether the body is base64; None for
    an HTTP API, where the content type decides.
    """
    multi_headers = header_lists(request)
    headers = {name: values[-1] for name, values in multi_headers.items()}
    query = query_lists(request.query)
    binary = None
    if binary_media_types is not None:
        content_type = request.headers.get("content-type", "")
        binary = media_type_matches(content_type, binary_media_types)
    body, encoded = event_body(request, binary)
    now = time.time()
    user_agent = headers.get("user-agent", "")
    context: dict[str, object] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "extendedRequestId": request_id,
        "httpMethod": request.method,
        "identity": {
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "sourceIp": source_ip,
            "user": None,
            "userAgent": user_agent,
            "userArn": None,
        },
        "path": request.path,
        "protocol": "HTTP/1.1",
        "requestId": request_id,
        "requestTime": request_time(now),
        "requestTimeEpoch": int(now * 1000),
        "resourceId": route_key if route_key is not None else api_id[:6],
        "resourcePath": resource,
        "stage": stage,
    }
    if route_key is not None:
        context["routeKey"] = route_key
    event: dict[str, object] = {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body if request.body else None,
        "isBase64Encoded": encoded,
    }
    if route_key is not None:
        event = {"version": "1.0", **event}
    return json.dumps(event).encode()


# --- responses ------------------------------------------------------------------------------------
class Malformed(ValueError):
    """A function's result that its payload format cannot map to an HTTP response."""


def result_value(result: InvocationResult) -> tuple[object, Response | None]:
    """The JSON value of a successful result, or the response it already is.

    A buffered streaming response maps through its prelude; a non-JSON content type is sent as
    it is; a body that is not JSON is (None, a 200 with it) for 2.0 to send as it is.
    """
    if result.content_type.startswith(HTTP_INTEGRATION):
        return None, integration_response(result.body)
    if result.content_type not in (_JSON_TYPE, ""):
        return None, Response(200, (("Content-Type", result.content_type),), result.body)
    try:
        return (json.loads(result.body) if result.body else None), None
    except (ValueError, RecursionError):
        return None, Response(200, ((("Content-Type", _JSON_TYPE),)), result.body)


def format2_response(result: InvocationResult) -> Response:
    """A successful result as a Function URL or an HTTP API (2.0) answers it.

    :class:`Malformed` for an object whose ``statusCode`` or base64 body cannot be read.
    """
    value, response = result_value(result)
    if response is not None:
        return response
    if not isinstance(value, dict) or "statusCode" not in value:
        return Response(200, ((("Content-Type", _JSON_TYPE),)), result.body)
    status = _status(value)
    fields = prelude_headers(value)
    body = value.get("body", "")
    if not isinstance(body, str):
        body = json.dumps(body)
    if not any(name.lower() == "content-type" for name, _ in fields):
        fields.append(("Content-Type", _JSON_TYPE))
    return Response(status, fields, _body(body, bool(value.get("isBase64Encoded"))))


def format1_response(result: InvocationResult, decode_base64: bool) -> Response:
    """A successful result as a REST API or a 1.0 HTTP API route answers it.

    ``decode_base64``: whether a body with ``isBase64Encoded`` is sent decoded (for a REST
    API, when the request's first ``Accept`` type is a binary media type).  :class:`Malformed`
    for anything but a 1.0 response object.
    """
    value, response = result_value(result)
    if response is not None and result.content_type.startswith(HTTP_INTEGRATION):
        return response
    if not isinstance(value, dict) or "statusCode" not in value:
        raise Malformed("not an object with a statusCode")
    unknown = set(value) - _FORMAT_1_FIELDS
    if unknown:
        raise Malformed(f"unexpected fields: {', '.join(sorted(unknown))}")
    status = _status(value)
    fields: list[tuple[str, str]] = []
    single = value.get("headers") or {}
    multi = value.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise Malformed("headers and multiValueHeaders must be objects")
    for name, item in single.items():
        if name not in multi:
            fields.append((str(name), _scalar(item)))
    for name, items in multi.items():
        if not isinstance(items, list):
            raise Malformed("multiValueHeaders values must be lists")
        fields.extend((str(name), _scalar(item)) for item in items)
    body = value.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise Malformed("body must be a string")
    encoded = value.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise Malformed("isBase64Encoded must be true or false")
    data = _body(body, encoded) if encoded and decode_base64 else body.encode()
    if not any(name.lower() == "content-type" for name, _ in fields):
        fields.append(("Content-Type", _JSON_TYPE))
    return Response(status, fields, data)


def integration_response(data: bytes) -> Response:
    """A buffered HTTP-integration stream: its prelude's status, headers and cookies, the rest
    as the body (no delimiter: all of it is the body)."""
    prelude, found, body = data.partition(PRELUDE_END)
    if not found:
        return Response(200, (("Content-Type", "application/octet-stream"),), data)
    status, fields = prelude_head(prelude)
    return Response(status, fields, body)


def prelude_head(prelude: bytes) -> tuple[int, list[tuple[str, str]]]:
    """The status and header lines a streaming prelude gives (200 and none if it is not one)."""
    try:
        value = json.loads(prelude) if prelude else {}
        status = int(value.get("statusCode", 200))
    except (ValueError, RecursionError, TypeError, AttributeError):
        value, status = {}, 200
    fields = prelude_headers(value)
    if not any(name.lower() == "content-type" for name, _ in fields):
        fields.append(("Content-Type", "application/octet-stream"))
    return status, fields


def prelude_headers(value: Mapping[str, object]) -> list[tuple[str, str]]:
    """Headers and ``Set-Cookie`` lines of a 2.0 response object (or a streaming prelude)."""
    fields: list[tuple[str, str]] = []
    headers = value.get("headers")
    if isinstance(headers, dict):
        fields.extend((str(k), str(v)) for k, v in headers.items())
    cookies = value.get("cookies")
    if isinstance(cookies, list):
        fields.extend(("Set-Cookie", str(c)) for c in cookies)
    return fields


def _status(value: Mapping[str, object]) -> int:
    try:
        status: int = int(value["statusCode"])  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise Malformed("statusCode is not a number") from None
    if not 100 <= status <= 599:
        raise Malformed(f"statusCode {status} is not an HTTP status")
    return status


def _body(body: str, encoded: bool) -> bytes:
    if not encoded:
        return body.encode()
    try:
        return base64.b64decode(body)
    except (binascii.Error, ValueError):
        raise Malformed("body is not base64") from None


def _scalar(item: object) -> str:
    if isinstance(item, (dict, list)):
        raise Malformed("header values must be text, numbers or booleans")
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)
