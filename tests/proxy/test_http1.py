"""The HTTP/1.1 codec, in memory: framing, trailers, interim replies and malformed input."""

from __future__ import annotations

import pytest

from lambdakit.proxy.http1 import (
    END,
    EndOfMessage,
    Event,
    Parser,
    ProtocolError,
    RequestHead,
    ResponseHead,
    encode_chunk,
    encode_last_chunk,
)

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n"


def feed_bytewise(parser: Parser, data: bytes) -> list[Event]:
    events: list[Event] = []
    for index in range(len(data)):
        events.extend(parser.feed(data[index : index + 1]))
    return events


def body_of(events: list[Event]) -> bytes:
    return b"".join(e for e in events if isinstance(e, bytes))


def test_request_without_body_ends_at_its_head_and_keeps_its_raw_bytes() -> None:
    events = Parser(server=True).feed(NEXT)
    assert len(events) == 2
    head = events[0]
    assert isinstance(head, RequestHead)
    assert (head.method, head.target) == ("GET", "/2018-06-01/runtime/invocation/next")
    assert head.headers == (("host", "api"),)
    assert head.raw == NEXT
    assert events[1] == END


def test_content_length_body_survives_any_split_and_pipelining() -> None:
    post = b"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"
    parser = Parser(server=True)
    events = feed_bytewise(parser, post + NEXT)
    assert body_of(events) == b"hello world"
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.method for h in heads] == ["POST", "GET"]
    assert sum(isinstance(e, EndOfMessage) for e in events) == 2
    assert parser.idle


def test_chunked_body_with_trailers_is_decoded_chunk_by_chunk() -> None:
    head = (
        b"POST /2018-06-01/runtime/invocation/id/response HTTP/1.1\r\n"
        b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        b"Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n"
    )
    parser = Parser(server=True)
    events = parser.feed(head + b"5\r\nhello\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [b"hello"]  # the first chunk is out before the body ends
    events = feed_bytewise(
        parser, b"6;ext=1\r\n world\r\n0\r\nLambda-Runtime-Function-Error-Type: Oops\r\n\r\n"
    )
    assert body_of(events) == b" world"
    assert events[-1] == EndOfMessage((("lambda-runtime-function-error-type", "Oops"),))


def test_responses_skip_100_continue_and_honour_head_and_204() -> None:
    parser = Parser(server=False)
    events = parser.feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"
    )
    assert isinstance(events[0], ResponseHead) and events[0].status == 202
    assert events[1:] == [b"ok", END]
    parser.expect_head_only()
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert events[1:] == [END]
    events = parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert events[1:] == [END]


def test_response_without_framing_is_read_until_close() -> None:
    parser = Parser(server=False)
    events = parser.feed(b"HTTP/1.1 200 OK\r\n\r\npart one ")
    events += parser.feed(b"part two")
    assert body_of(events) == b"part one part two"
    assert parser.close() == [END]


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX",
    ],
)
def test_malformed_input_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser(server=True).feed(data)


def test_oversized_head_and_truncated_message_are_errors() -> None:
    with pytest.raises(ProtocolError, match="too large"):
        Parser(server=True).feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000)
    parser = Parser(server=False)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(ProtocolError, match="middle"):
        parser.close()


def test_chunk_encoding_round_trips_through_the_parser() -> None:
    head = b"POST /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire = head + encode_chunk(b"abc") + encode_chunk(b"") + encode_chunk(b"defg")
    wire += encode_last_chunk((("x-trailer", "yes"),))
    events = Parser(server=True).feed(wire)
    assert body_of(events) == b"abcdefg"
    assert events[-1] == EndOfMessage((("x-trailer", "yes"),))


@pytest.mark.parametrize("size", [b"-6", b"0x3", b"1_0", b"+5", b""])
def test_chunk_sizes_other_than_hex_digits_are_refused(size: bytes) -> None:
    head = (
        b"POST /2018-06-01/runtime/invocation/id/response HTTP/1.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    parser = Parser(server=True)
    with pytest.raises(ProtocolError, match="bad chunk size"):
        parser.feed(head + size + b"\r\nX")
