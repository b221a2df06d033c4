"""API Gateway, served locally: REST and HTTP API routes on one port, each to its function.

https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html

Theory of operation.  A request is first a CORS preflight or not (:mod:`.cors`): an HTTP API
with CORS settings answers every preflight itself; a REST API with them answers preflights to
its own paths.  Otherwise the route table (:class:`~lambdakit.emulator.api_routes.RouteTable`)
picks the most specific route; none is 404 ``{"message":"Not Found"}``, or, when every route is
a REST API's, 403 ``{"message":"Missing Authentication Token"}`` as a REST API answers an
unknown path or method.  The route's payload format builds the event
(:mod:`.http_events`), which goes to the function's pool as Function URL requests do
(:func:`~lambdakit.emulator.doors.tracking.submit_counted`), and the result maps back by that
format's rules.  What API Gateway answers when the function fails: a REST API 502
``{"message": "Internal server error"}`` (a function error or a malformed response), an HTTP
API 500 ``{"message":"Internal Server Error"}``; a throttled invocation (the function's queue
is full) is a 500 with the same message, as API Gateway turns Lambda's 429 into its 500; a
request while the service stops is 503.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping

from lambdakit.emulator.api_routes import ApiConfig, ApiRoute, RouteMatch, RouteTable
from lambdakit.emulator.config import ServiceConfig
from lambdakit.emulator.doors import cors
from lambdakit.emulator.doors.http_events import (
    Malformed,
    format1_event,
    format1_response,
    format2_event,
    format2_response,
    media_type_matches,
)
from lambdakit.emulator.doors.tracking import InFlight, Submitted, submit_counted
from lambdakit.emulator.http import Deferred, Reply, Request, Response
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationRequest,
    InvocationResult,
    new_request_id,
    new_trace_id,
)
from lambdakit.emulator.pool import Pool
from lambdakit.wire import limits

logger = logging.getLogger("lambdakit.api")

_JSON = "application/json"
#: A REST API's only stage here (its URLs carry no stage prefix).
REST_STAGE = "local"
_SOURCE_IP = "127.0.0.1"


def _message(status: int, message: str, *fields: tuple[str, str]) -> Response:
    return Response(
        status, (("Content-Type", _JSON), *fields), json.dumps({"message": message}).encode()
    )


def _request_id_header(route: ApiRoute, request_id: str) -> tuple[str, str]:
    """The header that carries API Gateway's request id: each kind of API has its own."""
    return ("x-amzn-RequestId" if route.kind == "rest" else "apigw-requestid", request_id)


def _failure(route: ApiRoute, request_id: str) -> Response:
    """What API Gateway answers when the function fails or its response cannot be mapped."""
    header = _request_id_header(route, request_id)
    if route.kind == "rest":
        return _message(502, "Internal server error", header)
    return _message(500, "Internal Server Error", header)


class ApiGateway:
    """The request handler of the API Gateway port."""

    def __init__(
        self,
        service: ServiceConfig,
        api: ApiConfig,
        pools: Mapping[str, Pool],
        in_flight: InFlight,
    ) -> None:
        self._api = api
        self._pools = pools
        self._in_flight = in_flight
        self._table = RouteTable(api.routes)
        self._arns = {name: service.function_arn(name) for name in pools}
        self._account = service.account_id
        self._only_rest = all(route.kind == "rest" for route in api.routes)
        self.api_id = uuid.uuid5(uuid.NAMESPACE_URL, "lambdakit-api").hex[:10]

    def __call__(self, request: Request) -> Reply:
        if request.body_too_large:
            return _message(413, "Request Too Long")
        if cors.is_preflight(request.method, request.headers):
            answer = self._preflight(request)
            if answer is not None:
                return answer
        found = self._table.match(request.method, request.path)
        if found is None:
            logger.info("%s %s: no route", request.method, request.path)
            if self._only_rest:
                return _message(403, "Missing Authentication Token")
            return _message(404, "Not Found")
        request_id = new_request_id()
        route = found.route
        if not self._in_flight.accepting:
            return _message(503, "Service Unavailable", _request_id_header(route, request_id))
        payload = self._event(request, found, request_id)
        if len(payload) > limits.MAX_SYNC_PAYLOAD:
            return _message(413, "Request Too Long", _request_id_header(route, request_id))
        deferred = Deferred()
        started = time.monotonic()

        def done(result: InvocationResult) -> None:
            self._in_flight.finished()
            response = self._response(request, route, result, request_id)
            logger.info(
                "%s %s -> %s (%s): %d in %.0f ms",
                request.method,
                request.path,
                route.function,
                route.route_key,
                response.status,
                (time.monotonic() - started) * 1000,
            )
            deferred.give(response)

        invocation = Invocation(
            InvocationRequest(
                payload=payload, invoked_arn=self._arns[route.function], trace_id=new_trace_id()
            ),
            done,
            request_id,
        )
        submitted = submit_counted(self._pools[route.function], self._in_flight, invocation)
        if submitted is not Submitted.RUNNING:
            logger.warning(
                "%s %s: %s could not run (%s)",
                request.method,
                request.path,
                route.function,
                submitted.value,
            )
            message = "Internal server error" if route.kind == "rest" else "Internal Server Error"
            answer = _message(500, message, _request_id_header(route, request_id))
            return self._with_cors(request, route, answer)
        return deferred

    # Preflights ---------------------------------------------------------------------------------
    def _preflight(self, request: Request) -> Response | None:
        """The answer to a CORS preflight, when API Gateway (not a route) gives it."""
        routes = self._table.paths_matching(request.path)
        if any(r.method == "OPTIONS" for r in routes):
            return None  # the API routes OPTIONS to a function on this path
        rest = [r for r in routes if r.kind == "rest"]
        if rest and self._api.rest_cors is not None:
            methods = sorted({r.method for r in rest} | {"OPTIONS"})
            return cors.preflight(self._api.rest_cors, request.headers, 200, methods)
        if self._api.http_cors is not None and not rest:
            return cors.preflight(self._api.http_cors, request.headers, 204, ())
        return None

    # Events and responses -----------------------------------------------------------------------
    def _event(self, request: Request, found: RouteMatch, request_id: str) -> bytes:
        route = found.route
        host = request.headers.get("host", "localhost").split(":", 1)[0] or "localhost"
        common = {
            "request_id": request_id,
            "api_id": self.api_id,
            "domain_name": host,
            "account_id": self._account,
            "source_ip": _SOURCE_IP,
        }
        if route.payload_format == "2.0":
            return format2_event(
                request, route_key=route.route_key, path_parameters=found.parameters, **common
            )
        resource = request.path if route.path == "$default" else route.path
        return format1_event(
            request,
            resource=resource,
            stage=REST_STAGE if route.kind == "rest" else "$default",
            path_parameters=found.parameters,
            binary_media_types=self._api.binary_media_types if route.kind == "rest" else None,
            route_key=None if route.kind == "rest" else route.route_key,
            **common,
        )

    def _response(
        self, request: Request, route: ApiRoute, result: InvocationResult, request_id: str
    ) -> Response:
        if result.function_error:
            logger.warning(
                "%s %s: %s failed: %s",
                request.method,
                request.path,
                route.function,
                result.error_type or result.function_error,
            )
            return self._with_cors(request, route, _failure(route, request_id))
        try:
            if route.payload_format == "2.0":
                response = format2_response(result)
            else:
                response = format1_response(result, self._decodes(request, route))
        except Malformed as exc:
            logger.warning(
                "%s %s: the response of %s is malformed for payload format %s: %s",
                request.method,
                request.path,
                route.function,
                route.payload_format,
                exc,
            )
            return self._with_cors(request, route, _failure(route, request_id))
        fields = list(response.headers)
        fields.append(_request_id_header(route, request_id))
        return self._with_cors(request, route, Response(response.status, fields, response.body))

    def _decodes(self, request: Request, route: ApiRoute) -> bool:
        """Whether a base64 body is sent decoded: always for an HTTP API; for a REST API when
        the request's first ``Accept`` type is one of its binary media types."""
        if route.kind == "http":
            return True
        first = request.headers.get("accept", "").split(",", 1)[0]
        return media_type_matches(first, self._api.binary_media_types)

    def _with_cors(self, request: Request, route: ApiRoute, response: Response) -> Response:
        settings = self._api.http_cors
        if route.kind != "http" or settings is None:
            return response
        fields = cors.with_cors(settings, request.headers.get("origin"), response.headers)
        return Response(response.status, fields, response.body)
