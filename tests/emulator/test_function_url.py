"""Function URLs with plain HTTP: the 2.0 event, Lambda's response rules, streaming."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.serving import REPO, Serve, running_serve

URL_FUNCTION = REPO / "tests" / "fixtures" / "functions" / "url"


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[Serve, int]]:
    with running_serve(
        "--function-name",
        "web",
        "--code-dir",
        str(URL_FUNCTION),
        "--url-port",
        "0",
        "--concurrency",
        "2",
    ) as serve:
        match = re.search(r"function URL of web: http://127.0.0.1:(\d+)/", serve.output())
        assert match, serve.output()
        yield serve, int(match.group(1))


class _Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self) -> bytes:
        return self.body


def _request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> _Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        return _Answer(conn.getresponse())
    finally:
        conn.close()


def test_a_request_becomes_the_version_2_event(url: tuple[Serve, int]) -> None:
    _, port = url
    response = _request(
        port,
        "POST",
        "/echo?a=1&b=2&a=3",
        b'{"x": 1}',
        {"Content-Type": "application/json", "Cookie": "c1=v1; c2=v2", "X-Custom": "yes"},
    )
    assert response.status == 418
    assert response.getheader("X-Kind") == "teapot"
    assert response.headers.get_all("Set-Cookie") == ["x=1", "y=2"]
    event = json.loads(response.read())
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "a=1&b=2&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-custom"] == "yes"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["path"] == "/echo"
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_both_ways(url: tuple[Serve, int]) -> None:
    _, port = url
    response = _request(
        port, "PUT", "/binary", b"\xff\xfe", {"Content-Type": "application/octet-stream"}
    )
    assert response.status == 200
    assert response.read() == b"\x00\x01\x02"


def test_a_plain_result_is_a_200_json_body_and_errors_are_502(url: tuple[Serve, int]) -> None:
    _, port = url
    plain = _request(port, "GET", "/plain")
    assert (plain.status, plain.getheader("Content-Type")) == (200, "application/json")
    assert json.loads(plain.read()) == {"plain": True}
    failed = _request(port, "GET", "/fail")
    assert failed.status == 502
    assert json.loads(failed.read()) == {"Message": "Internal Server Error"}


def test_a_streaming_function_sends_status_headers_then_chunks_as_written(
    url: tuple[Serve, int],
) -> None:
    _, port = url
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        started = time.monotonic()
        conn.request("GET", "/stream")
        response = conn.getresponse()
        head_at = time.monotonic() - started
        assert response.status == 201
        assert response.getheader("X-Streamed") == "yes"
        assert response.getheader("Set-Cookie") == "a=1"
        first = response.read1()
        first_at = time.monotonic() - started
        rest = response.read()
    finally:
        conn.close()
    assert first + rest == b"hello world"
    assert first == b"hello "
    assert head_at < 0.45 and first_at < 0.45  # the second chunk comes 0.5 s later


def test_a_stream_without_a_prelude_delimiter_keeps_every_byte(url: tuple[Serve, int]) -> None:
    _, port = url
    response = _request(port, "GET", "/no-prelude")
    assert response.status == 200
    assert response.read() == b"a" * 18000


def test_an_http_1_0_client_gets_a_streamed_body_ended_by_the_connection(
    url: tuple[Serve, int],
) -> None:
    import socket

    _, port = url
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hello world"
