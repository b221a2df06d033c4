"""The service's HTTP/1.1 framing (httptools), in memory: bytes in, requests out."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from lambdakit.emulator.http import Response
from lambdakit.emulator.http.codec import (
    MAX_HEAD_BYTES,
    ProtocolError,
    RequestReader,
    encode_chunk,
    encode_response,
)


def _streams(path: str, headers: Mapping[str, str]) -> bool:
    return headers.get("lambda-runtime-function-response-mode") == "streaming"


class Collector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.trailers: Mapping[str, str] | None = None
        self.aborted = False

    def body_chunk(self, data: bytes) -> None:
        self.chunks.append(data)

    def body_end(self, trailers: Mapping[str, str]) -> None:
        self.trailers = trailers

    def body_abort(self) -> None:
        self.aborted = True


def _feed(reader: RequestReader, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])


PIPELINED = (
    b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n"
)


@pytest.mark.parametrize("step", [1, 7, len(PIPELINED)])
def test_pipelined_requests_come_out_in_order_however_the_bytes_are_cut(step: int) -> None:
    reader = RequestReader(max_body=100)
    _feed(reader, PIPELINED, step)
    got = [(r.method, r.path, r.query, r.body, dict(r.trailers)) for r in reader.requests]
    assert got == [
        ("POST", "/a", "", b"abc", {}),
        ("GET", "/b", "q=1", b"", {}),
        ("POST", "/c", "", b"hi", {"x-t": "1"}),
    ]


def test_100_continue_is_flagged_and_a_refused_body_is_never_awaited() -> None:
    reader = RequestReader(max_body=10)
    reader.feed(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert reader.expects_continue and not reader.requests
    reader.feed(b"hello")
    assert reader.requests.popleft().body == b"hello"
    big = RequestReader(max_body=10)
    big.feed(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n")
    request = big.requests.popleft()  # answered at once, before any body
    assert request.body_too_large and request.body_size == 50 and not request.keep_alive


def test_a_repeated_header_keeps_its_last_value_and_every_value_apart() -> None:
    reader = RequestReader(1024)
    reader.feed(
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nAccept: */*\r\nx-tag: two\r\n"
        b"X-Tag: three\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Tag: once\r\n\r\n"
    )
    first, second = reader.requests
    assert first.headers["x-tag"] == "three"
    assert first.repeated_headers == {"x-tag": ("one", "two", "three")}
    assert second.headers["x-tag"] == "once"
    assert second.repeated_headers == {}


def test_a_body_over_the_limit_is_counted_not_kept() -> None:
    reader = RequestReader(max_body=4)
    reader.feed(b"POST /a HTTP/1.1\r\nContent-Length: 6\r\n\r\nabcdef")
    request = reader.requests.popleft()
    assert (request.body, request.body_too_large, request.body_size) == (b"", True, 6)


def test_a_streamed_body_is_dispatched_at_its_head_and_ends_with_its_trailers() -> None:
    reader = RequestReader(max_body=4, streams=_streams)
    reader.feed(
        b"POST /r HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
        b"Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n"
    )
    request = reader.requests.popleft()
    assert request.stream is not None
    collector = Collector()
    request.stream.consume(collector)
    reader.feed(encode_chunk(b"first") + encode_chunk(b"second, longer than max_body"))
    assert collector.chunks == [b"first", b"second, longer than max_body"]
    reader.feed(b"0\r\nLambda-Runtime-Function-Error-Type: E\r\n\r\n")
    assert collector.trailers == {"lambda-runtime-function-error-type": "E"}


def test_a_stream_cut_off_by_the_connection_is_aborted() -> None:
    reader = RequestReader(max_body=4, streams=_streams)
    reader.feed(
        b"POST /r HTTP/1.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel"
    )
    stream = reader.requests.popleft().stream
    assert stream is not None
    reader.abort()
    collector = Collector()
    stream.consume(collector)  # what arrived, then the abort, in order
    assert collector.chunks == [b"hel"] and collector.aborted


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"NOT HTTP\r\n\r\n", 400),
    ],
    ids=["head too large", "bad chunk size", "garbage"],
)
def test_bad_input_is_a_protocol_error_with_its_status(data: bytes, status: int) -> None:
    reader = RequestReader(max_body=100)
    with pytest.raises(ProtocolError) as caught:
        reader.feed(data)
    assert caught.value.status == status


def test_responses_are_framed_with_their_length_and_connection() -> None:
    wire = encode_response(Response(202, (("Content-Type", "application/json"),), b"{}"), True)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert b"Content-Length: 2" in head and body == b"{}"
    closing = encode_response(Response(500), keep_alive=False)
    assert b"Connection: close" in closing


def test_a_head_that_repeats_is_scanned_once_and_read_the_same_every_time() -> None:
    from lambdakit.emulator.http import codec

    head = b"GET /2018-06-01/runtime/invocation/next?x=1 HTTP/1.1\r\nHost: repeat.test\r\n"
    reader = RequestReader(1024)
    for _ in range(3):
        reader.feed(head + b"\r\n")
    first, second, third = reader.requests
    assert first == second == third
    assert (third.method, third.path, third.query) == (
        "GET",
        "/2018-06-01/runtime/invocation/next",
        "x=1",
    )
    assert third.headers == {"host": "repeat.test"}
    assert head in codec._SCANNED  # remembered on its second sighting
    with pytest.raises(TypeError):  # shared by every request with that head: read-only
        third.headers["host"] = "changed"  # type: ignore[index]

    # A head seen once (a /response: its path names the request) is not kept.
    once = (
        b"POST /2018-06-01/runtime/invocation/only-once/response HTTP/1.1\r\nContent-Length: 2\r\n"
    )
    reader.feed(once + b"\r\n{}")
    assert reader.requests[-1].body == b"{}"
    assert once not in codec._SCANNED
    # A head too long to remember is read all the same.
    long = b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n"
    for _ in range(2):
        reader.feed(long + b"\r\n")
    assert reader.requests[-1].path == "/" + "a" * 3000
    assert long not in codec._SCANNED and long not in codec._SEEN_ONCE


def test_a_preencoded_response_is_framed_as_any_other() -> None:
    from lambdakit.emulator.http import codec

    response = codec.preencoded(Response(202, (("Content-Type", "application/json"),), b"{}"))
    fresh = Response(202, (("Content-Type", "application/json"),), b"{}")
    assert encode_response(response, True) == encode_response(fresh, True)
    assert encode_response(response, False) == encode_response(fresh, False)
    assert b"Connection: close" in encode_response(response, False)
    assert codec._PREENCODED[id(response)][0] is response


def test_a_full_table_of_heads_starts_again_so_new_heads_are_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lambdakit.emulator.http import codec

    monkeypatch.setattr(codec, "_SCANNED", {})
    reader = RequestReader(1024)

    def twice(port: int) -> bytes:
        head = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        reader.feed(head + b"\r\n" + head + b"\r\n")
        return head

    for port in range(codec._MAX_SCANNED):  # one environment after another, each its port
        twice(port)
    assert len(codec._SCANNED) == codec._MAX_SCANNED
    newest = twice(65000)
    assert newest in codec._SCANNED and len(codec._SCANNED) == 1
    assert reader.requests[-1].headers == {"host": "127.0.0.1:65000"}
