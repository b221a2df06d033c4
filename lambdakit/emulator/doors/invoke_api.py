"""The Invoke API as boto3, the AWS CLI and curl call it.

https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html

``POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=...]``: the name may be a
plain name, ``name:alias``, a partial ARN (``123456789012:function:name``) or a full ARN.
SigV4 ``Authorization`` headers are accepted without verification.  Function errors answer 200
with ``X-Amz-Function-Error``; service errors answer their status with a JSON body and
``x-amzn-ErrorType``, which botocore turns into the named exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, unquote

from lambdakit.emulator.config import ServiceConfig
from lambdakit.emulator.http import Reply, Request, Response
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationRequest,
    InvocationResult,
    new_trace_id,
)
from lambdakit.emulator.pool import Pool, Throttled
from lambdakit.wire import errors, headers, limits, paths

# FunctionName as the API documents it: optional ARN prefix, name, optional qualifier.
_FUNCTION_NAME = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:[a-z]{2}(?:-gov)?-[a-z]+-\d{1}:)?(?:\d{12}:)?"
    r"(?:function:)?([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_JSON = "application/json"


def service_error(
    error_type: str, message: str, *extra_headers: tuple[str, str], **members: str
) -> Response:
    """A service error as Lambda returns it: status, JSON body and ``x-amzn-ErrorType``."""
    return Response(
        errors.SERVICE_ERROR_STATUS.get(error_type, 400),
        (("Content-Type", _JSON), (headers.ERROR_TYPE, error_type), *extra_headers),
        errors.service_error_body(message, **members),
    )


def parse_function_name(raw: str) -> tuple[str, str] | None:
    """``(name, qualifier)`` from a FunctionName path segment, or None if malformed."""
    match = _FUNCTION_NAME.match(unquote(raw))
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


class InvokeApi:
    """The request handler of the Invoke API listener."""

    def __init__(self, service: ServiceConfig, pools: Mapping[str, Pool]) -> None:
        self._service = service
        self._pools = pools
        self._arns = {name: service.function_arn(name) for name in pools}
        #: Invocations whose caller has not been answered yet (for an orderly shutdown).
        self.in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._accepting = True

    def stop_accepting(self) -> None:
        self._accepting = False

    async def drained(self) -> None:
        """Wait until every accepted invocation has been answered."""
        await self._drained.wait()

    def _finished(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._drained.set()

    def __call__(self, request: Request) -> Reply:
        path = request.path
        if not (path.startswith(paths.INVOKE_PREFIX) and path.endswith(paths.INVOKE_SUFFIX)):
            return (
                service_error(
                    "UnknownOperationException", f"Unknown operation {request.method} {path}"
                )
                if path != "/"
                else _index(self._pools)
            )
        if request.method != "POST":
            return service_error(
                "UnknownOperationException", f"Unknown operation {request.method} {path}"
            )
        raw_name = path[len(paths.INVOKE_PREFIX) : -len(paths.INVOKE_SUFFIX)]
        return self._invoke(request, raw_name)

    def _invoke(self, request: Request, raw_name: str) -> Reply:
        parsed = parse_function_name(raw_name)
        qualifier = parse_qs(request.query).get("Qualifier", [""])[0]
        if parsed is None:
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                f"1 validation error detected: Value '{unquote(raw_name)}' at 'functionName' "
                "failed to satisfy constraint: Member must satisfy regular expression pattern",
            )
        name, name_qualifier = parsed
        qualifier = qualifier or name_qualifier
        pool = self._pools.get(name)
        if pool is None or qualifier not in ("", "$LATEST"):
            arn = self._service.function_arn(name) + (f":{qualifier}" if qualifier else "")
            return service_error(errors.RESOURCE_NOT_FOUND, f"Function not found: {arn}")
        if request.body_too_large:
            return service_error(
                errors.REQUEST_TOO_LARGE,
                f"Request must be smaller than {limits.MAX_SYNC_PAYLOAD - 100} bytes for the "
                "InvokeFunction operation",
            )
        invocation_type = request.headers.get(headers.INVOCATION_TYPE, headers.REQUEST_RESPONSE)
        if invocation_type not in (headers.REQUEST_RESPONSE, headers.EVENT, headers.DRY_RUN):
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]",
            )
        payload = request.body or b"{}"
        if not _is_json(payload):
            return service_error(
                errors.INVALID_REQUEST_CONTENT,
                "Could not parse request body into json: Could not parse payload into json",
            )
        client_context = request.headers.get(headers.AMZ_CLIENT_CONTEXT, "")
        decoded_context = _decode_client_context(client_context)
        if decoded_context is None:
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                "Client context must be a valid Base64-encoded JSON object of at most "
                f"{limits.MAX_CLIENT_CONTEXT} bytes",
            )
        if invocation_type == headers.DRY_RUN:
            return Response(204, ((headers.AMZN_REQUEST_ID, str(uuid.uuid4())),))
        if invocation_type == headers.EVENT:
            return service_error(
                errors.INVALID_PARAMETER_VALUE,
                "lambdakit serve does not run Event (asynchronous) invocations yet; "
                "use RequestResponse",
            )
        if not self._accepting:
            return service_error(errors.SERVICE_EXCEPTION, "The service is shutting down")
        return self._run(pool, request, payload, decoded_context, qualifier)

    def _run(
        self, pool: Pool, request: Request, payload: bytes, client_context: str, qualifier: str
    ) -> Reply:
        reply: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        request_id = str(uuid.uuid4())
        arn = self._arns[pool.function.name] + (f":{qualifier}" if qualifier else "")
        invocation = Invocation(
            InvocationRequest(
                payload=payload,
                invoked_arn=arn,
                client_context=client_context,
                tenant_id=request.headers.get(headers.AMZ_TENANT_ID, ""),
                trace_id=_trace_id(request.headers.get(headers.AMZN_TRACE_ID, "")),
            ),
            self._answer(reply, request_id, pool.function.version),
            request_id,
        )
        self.in_flight += 1
        self._drained.clear()
        try:
            pool.submit(invocation)
        except Throttled:
            self._finished()
            return service_error(
                errors.TOO_MANY_REQUESTS,
                "Rate Exceeded.",
                (headers.RETRY_AFTER, "1"),
                Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        return reply

    def _answer(
        self, reply: asyncio.Future[Response], request_id: str, version: str
    ) -> Callable[[InvocationResult], None]:
        """The callback that turns the invocation's result into the caller's response."""

        def done(result: InvocationResult) -> None:
            self._finished()
            if reply.done():  # the caller went away; the invocation still ran
                return
            fields = [
                ("Content-Type", result.content_type),
                (headers.AMZN_REQUEST_ID, request_id),
                (headers.EXECUTED_VERSION, version),
            ]
            if result.function_error:
                fields.append((headers.FUNCTION_ERROR, result.function_error))
            reply.set_result(Response(200, fields, result.body))

        return done


def _trace_id(header: str) -> str:
    """The caller's ``X-Amzn-Trace-Id`` if it has a Root, else a fresh one."""
    return header if header.startswith("Root=") else new_trace_id()


def _is_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _decode_client_context(value: str) -> str | None:
    """The JSON text inside ``X-Amz-Client-Context``; "" if absent; None if invalid."""
    if not value:
        return ""
    if len(value) > limits.MAX_CLIENT_CONTEXT:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
        if not isinstance(json.loads(decoded), dict):
            return None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return decoded


def _index(pools: Mapping[str, Pool]) -> Response:
    body = json.dumps({"functions": sorted(pools)}).encode()
    return Response(200, (("Content-Type", _JSON),), body)
