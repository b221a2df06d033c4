"""API Gateway served by ``lambdakit serve``: real processes, real HTTP requests.

One serve holds a REST API and an HTTP API on one port (tests/fixtures/functions/api): two
functions on lambdakit's Python runtime, path parameters, greedy paths, ANY, payload formats
1.0 and 2.0 and their response rules, binary media, CORS, and the errors API Gateway answers.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest

from tests.serving import REPO, Serve, running_serve

API = REPO / "tests" / "fixtures" / "functions" / "api"
BINARY = b"\x89PNG\r\n\x00\xff\xfe"
_API_LINE = re.compile(r"API Gateway: http://127.0.0.1:(\d+)")


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    def event(self) -> dict[str, Any]:
        """The event the echo function received (its body)."""
        return self.json()


def _api_port(serve: Serve) -> int:
    match = _API_LINE.search(serve.output())
    assert match, serve.output()
    return int(match.group(1))


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | dict[str, str] | None = None,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path)
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in items:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def api() -> Iterator[int]:
    with running_serve("--config", str(API / "lambdakit.toml")) as serve:
        yield _api_port(serve)


# --- routing -------------------------------------------------------------------------------------
def test_path_parameters_query_strings_and_cookies_reach_the_2_0_event(api: int) -> None:
    answer = request(
        api,
        "GET",
        "/users/a%20b?tag=x&tag=y&one=1",
        headers=[("Cookie", "c1=v1; c2=v2"), ("X-Multi", "m1"), ("X-Multi", "m2")],
    )
    assert answer.status == 201
    event = answer.event()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /users/{id}"
    assert event["rawPath"] == "/users/a%20b"
    assert event["pathParameters"] == {"id": "a b"}
    assert event["queryStringParameters"] == {"tag": "x,y", "one": "1"}
    assert event["rawQueryString"] == "tag=x&tag=y&one=1"
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert isinstance(headers, dict)
    assert headers["x-multi"] == "m1,m2"
    assert "cookie" not in headers
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert context["http"]["method"] == "GET"
    assert context["routeKey"] == "GET /users/{id}"
    # 2.0 response rules: status, headers, one Set-Cookie per cookie.
    assert answer.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert answer.headers["X-Route"] == "GET /users/{id}"
    assert answer.headers["apigw-requestid"] == context["requestId"]


def test_the_most_specific_route_wins_and_greedy_paths_keep_their_slashes(api: int) -> None:
    literal = request(api, "GET", "/users/me").event()
    assert literal["routeKey"] == "ANY /users/me"
    assert "pathParameters" not in literal
    assert request(api, "DELETE", "/users/me").event()["routeKey"] == "ANY /users/me"
    greedy = request(api, "GET", "/files/a/b%2Fc/d.txt").event()
    assert greedy["routeKey"] == "GET /files/{proxy+}"
    assert greedy["pathParameters"] == {"proxy": "a/b/c/d.txt"}


def test_an_http_api_answers_404_for_an_unknown_path_or_method(api: int) -> None:
    for method, path in (("GET", "/nowhere"), ("POST", "/users/1"), ("GET", "/files")):
        answer = request(api, method, path)
        assert (answer.status, answer.json()) == (404, {"message": "Not Found"}), (method, path)


@pytest.fixture(scope="module")
def rest_only() -> Iterator[int]:
    with running_serve("--config", str(API / "rest-only.toml")) as serve:
        yield _api_port(serve)


def test_a_rest_only_api_answers_403_missing_authentication_token(rest_only: int) -> None:
    assert request(rest_only, "GET", "/items/1").status == 201
    for method, path in (("GET", "/elsewhere"), ("POST", "/items/1")):
        answer = request(rest_only, method, path)
        assert answer.status == 403
        assert answer.json() == {"message": "Missing Authentication Token"}


def test_a_throttled_invocation_is_a_500_as_api_gateway_answers_lambdas_429(
    rest_only: int,
) -> None:
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(request, rest_only, "GET", "/slow/slow")
        time.sleep(0.5)  # the first holds the function's one environment for 2 s
        second = request(rest_only, "GET", "/slow/slow")
        assert (second.status, second.json()) == (500, {"message": "Internal server error"})
        assert (first.result().status, first.result().body) == (200, b"slow")


# --- payload format 1.0 --------------------------------------------------------------------------
def test_a_rest_route_sends_the_1_0_event_with_multi_value_fields(api: int) -> None:
    answer = request(
        api,
        "GET",
        "/rest/users/7?tag=x&tag=y",
        headers=[("X-Multi", "m1"), ("X-Multi", "m2")],
    )
    assert answer.status == 201
    event = answer.event()
    assert "version" not in event
    assert event["resource"] == "/rest/users/{id}"
    assert event["path"] == "/rest/users/7"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "7"}
    assert event["queryStringParameters"] == {"tag": "y"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["x", "y"]}
    assert event["headers"]["x-multi"] == "m2"
    assert event["multiValueHeaders"]["x-multi"] == ["m1", "m2"]
    assert event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert isinstance(context, dict)
    assert context["resourcePath"] == "/rest/users/{id}"
    assert context["httpMethod"] == "GET"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "local"
    # 1.0 response rules: multiValueHeaders become one line each.
    assert answer.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert answer.headers["x-amzn-RequestId"] == context["requestId"]
    # A REST API with CORS settings leaves the function's own CORS headers alone.
    assert answer.headers["Access-Control-Allow-Origin"] == "https://function.example"


def test_an_http_api_route_may_ask_for_the_1_0_format(api: int) -> None:
    answer = request(api, "POST", "/v1/users/9?q=1", b"hello", {"Content-Type": "text/plain"})
    assert answer.status == 201
    event = answer.event()
    assert event["version"] == "1.0"
    assert event["resource"] == "/v1/users/{id}"
    assert event["pathParameters"] == {"id": "9"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1"]}
    assert event["body"] == "hello"
    assert answer.headers.get_all("Set-Cookie") == ["a=1", "b=2"]


# --- response rules and errors -------------------------------------------------------------------
def test_a_2_0_result_without_status_code_is_a_200_json_body(api: int) -> None:
    plain = request(api, "GET", "/special/plain")
    assert (plain.status, plain.headers["Content-Type"]) == (200, "application/json")
    assert plain.json() == {"plain": True}
    text = request(api, "GET", "/special/text")
    assert (text.status, json.loads(text.body)) == (200, "just text")


def test_function_errors_are_502_on_a_rest_api_and_500_on_an_http_api(api: int) -> None:
    rest = request(api, "GET", "/rest/special/fail")
    assert (rest.status, rest.json()) == (502, {"message": "Internal server error"})
    http_api = request(api, "GET", "/special/fail")
    assert (http_api.status, http_api.json()) == (500, {"message": "Internal Server Error"})


def test_a_malformed_1_0_response_is_502(api: int) -> None:
    for what in ("malformed", "text", "plain"):
        answer = request(api, "GET", f"/rest/special/{what}")
        assert (answer.status, answer.json()) == (502, {"message": "Internal server error"}), what


# --- binary media --------------------------------------------------------------------------------
def test_rest_request_bodies_of_binary_media_types_arrive_base64(api: int) -> None:
    binary = request(api, "POST", "/rest/special/upload", BINARY, {"Content-Type": "image/png"})
    assert binary.status == 200
    assert binary.json() == {"isBase64Encoded": True, "body": base64.b64encode(BINARY).decode()}
    text = request(api, "POST", "/rest/special/upload", b"plain", {"Content-Type": "text/plain"})
    assert text.json() == {"isBase64Encoded": False, "body": "plain"}


def test_rest_responses_are_decoded_when_the_first_accept_type_is_binary(api: int) -> None:
    decoded = request(api, "GET", "/rest/special/binary", headers={"Accept": "image/png, */*"})
    assert decoded.status == 200
    assert decoded.body == BINARY
    assert decoded.headers["Content-Type"] == "image/png"
    as_text = request(api, "GET", "/rest/special/binary", headers={"Accept": "text/html"})
    assert as_text.body == base64.b64encode(BINARY)


def test_http_api_bodies_are_base64_by_content_type_and_decoded_on_the_way_back(api: int) -> None:
    upload = request(
        api, "POST", "/special/upload", BINARY, {"Content-Type": "application/octet-stream"}
    )
    assert upload.json() == {"isBase64Encoded": True, "body": base64.b64encode(BINARY).decode()}
    assert request(api, "GET", "/special/binary").body == BINARY


# --- CORS ----------------------------------------------------------------------------------------
def test_an_http_api_answers_preflights_itself(api: int) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    answer = request(api, "OPTIONS", "/users/1", headers=preflight)
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert answer.headers["Access-Control-Allow-Headers"] == "content-type"
    assert answer.headers["Access-Control-Max-Age"] == "300"
    other = request(api, "OPTIONS", "/users/1", headers={**preflight, "Origin": "https://x.org"})
    assert other.status == 204
    assert "Access-Control-Allow-Origin" not in other.headers


def test_an_http_api_puts_its_cors_headers_on_responses(api: int) -> None:
    allowed = request(api, "GET", "/users/1", headers={"Origin": "https://app.example"})
    assert allowed.status == 201
    assert allowed.headers.get_all("Access-Control-Allow-Origin") == ["https://app.example"]
    assert allowed.headers["Access-Control-Expose-Headers"] == "x-route"
    refused = request(api, "GET", "/users/1", headers={"Origin": "https://x.org"})
    assert "Access-Control-Allow-Origin" not in refused.headers  # the function's is dropped too


def test_a_rest_api_answers_preflights_to_its_paths(api: int) -> None:
    answer = request(
        api,
        "OPTIONS",
        "/rest/users/1",
        headers={"Origin": "https://any.example", "Access-Control-Request-Method": "GET"},
    )
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Allow-Methods"] == "*"


# --- one function, no routes ---------------------------------------------------------------------
def test_api_port_with_one_function_sends_every_request_to_it() -> None:
    with running_serve(
        "--code-dir", str(API), "--function-name", "web", "--api-port", "0", "app.echo"
    ) as serve:
        port = _api_port(serve)
        assert "$default -> web (HTTP API, payload 2.0)" in serve.output()
        for method, path in (("GET", "/"), ("PUT", "/any/where?x=1")):
            answer = request(port, method, path, b"{}" if method == "PUT" else None)
            assert answer.status == 201
            event = answer.event()
            assert event["routeKey"] == "$default"
            assert event["requestContext"]["http"]["method"] == method


def test_a_route_for_options_takes_the_preflight_instead(api: int) -> None:
    answer = request(
        api,
        "OPTIONS",
        "/rest/own-options/1",
        headers={"Origin": "https://any.example", "Access-Control-Request-Method": "GET"},
    )
    assert answer.status == 201
    assert answer.event()["resource"] == "/rest/own-options/{id}"


def test_a_streaming_functions_prelude_gives_status_headers_and_cookies() -> None:
    streaming = REPO / "examples" / "streaming"
    with running_serve("--code-dir", str(streaming), "--api-port", "0", "app.page") as serve:
        answer = request(_api_port(serve), "GET", "/")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["set-cookie"] == "visited=1; Path=/"
    assert answer.body.startswith(b"<!doctype html><ul>") and answer.body.endswith(b"</ul>\n")
