"""The HTTP/1.1 codec, in memory: framing, trailers, interim replies and malformed input.

The tables at the end pin down what is valid (lambdakit/wire/http1.py's docstring says it in
words): every peer of lambdakit, the runtime, the proxy, the telemetry listener and the tests'
fakes, reads HTTP through this one parser."""

from __future__ import annotations

import pytest

from lambdakit.wire.http1 import (
    CHUNKED,
    END,
    MAX_CHUNK_LINE,
    MAX_HEAD,
    UNFRAMED,
    EndOfMessage,
    Event,
    Headers,
    Parser,
    ProtocolError,
    RequestHead,
    ResponseHead,
    body_length,
    closes_connection,
    encode_chunk,
    encode_last_chunk,
    header,
    parse_request_head,
    parse_response_head,
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


# --- tables -------------------------------------------------------------------------------------

REQUEST_HEAD = b"POST /r HTTP/1.1\r\nHost: api\r\n"
CHUNKED_REQUEST = REQUEST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
CHUNKED_RESPONSE = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def parse(data: bytes, *, server: bool = True, bytewise: bool = False) -> list[Event]:
    parser = Parser(server=server)
    return feed_bytewise(parser, data) if bytewise else parser.feed(data)


def messages(events: list[Event]) -> list[tuple[str, bytes, Headers]]:
    """Each message as (start line, body, trailers): what the events say, however they came."""
    found: list[tuple[str, bytes, Headers]] = []
    start, body = "", b""
    for event in events:
        if isinstance(event, RequestHead):
            start, body = f"{event.method} {event.target}", b""
        elif isinstance(event, ResponseHead):
            start, body = f"{event.status} {event.reason}", b""
        elif isinstance(event, bytes):
            body += event
        else:
            found.append((start, body, event.trailers))
    return found


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            NEXT + NEXT + NEXT,
            [("GET /2018-06-01/runtime/invocation/next", b"", ())] * 3,
            id="three-gets",
        ),
        pytest.param(
            REQUEST_HEAD + b"Content-Length: 3\r\n\r\nabc" + NEXT,
            [("POST /r", b"abc", ()), ("GET /2018-06-01/runtime/invocation/next", b"", ())],
            id="length-body-then-get",
        ),
        pytest.param(
            CHUNKED_REQUEST + b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" + CHUNKED_REQUEST + b"0\r\n\r\n",
            [("POST /r", b"abc", (("x-t", "1"),)), ("POST /r", b"", ())],
            id="chunked-then-chunked",
        ),
        pytest.param(
            b"\r\n\r\n" + NEXT + b"\r\n" + NEXT,
            [("GET /2018-06-01/runtime/invocation/next", b"", ())] * 2,
            id="empty-lines-before-request-lines",
        ),
    ],
)
def test_pipelined_requests(data: bytes, expected: list[object], bytewise: bool) -> None:
    parser = Parser(server=True)
    events = feed_bytewise(parser, data) if bytewise else parser.feed(data)
    assert messages(events) == expected
    assert parser.idle


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_pipelined_responses_and_interim_ones(bytewise: bool) -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"  # 204: no body, whatever it says
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    final = [("202 Accepted", b"ok", ()), ("204 No Content", b"", ()), ("200 OK", b"hi", ())]
    parser = Parser(server=False)
    assert messages(feed_bytewise(parser, data) if bytewise else parser.feed(data)) == final
    reporting = Parser(server=False, interim=True)
    events = feed_bytewise(reporting, data) if bytewise else reporting.feed(data)
    interim = [("100 Continue", b"", ()), final[0], ("103 Early Hints", b"", ()), *final[1:]]
    assert messages(events) == interim


def test_expect_100_continue_leaves_the_body_to_come() -> None:
    parser = Parser(server=True)
    head = REQUEST_HEAD + b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    [request] = parser.feed(head)  # the head alone: the client waits for 100 Continue
    assert isinstance(request, RequestHead) and header(request.headers, "expect") == "100-continue"
    assert not parser.idle
    assert parser.feed(b"body") == [b"body", END]


@pytest.mark.parametrize(
    ("body", "chunks", "trailers"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", [b"hello"], ()),
        (b"5;name=value\r\nhello\r\n0;last\r\n\r\n", [b"hello"], ()),
        (b'5 ; q="a;b"\r\nhello\r\n0\r\n\r\n', [b"hello"], ()),
        (b"A\r\n0123456789\r\n0\r\n\r\n", [b"0123456789"], ()),
        (b"0a\r\n0123456789\r\n0\r\n\r\n", [b"0123456789"], ()),
        (b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n", [b"a", b"b"], ()),
        (
            b"2\r\nhi\r\n0\r\nLambda-Runtime-Function-Error-Type: X.Y\r\nX-Two:  two \r\n\r\n",
            [b"hi"],
            (("lambda-runtime-function-error-type", "X.Y"), ("x-two", "two")),
        ),
        (b"0\r\nX-Empty:\r\n\r\n", [], (("x-empty", ""),)),
    ],
)
def test_chunked_bodies_and_trailers(body: bytes, chunks: list[bytes], trailers: Headers) -> None:
    for parser in (Parser(server=True), Parser(server=True, whole_chunks=True)):
        events = parser.feed(CHUNKED_REQUEST + body)
        assert body_of(events) == b"".join(chunks)
        assert events[-1] == EndOfMessage(trailers)
    whole = Parser(server=True, whole_chunks=True)
    pieces = [e for e in feed_bytewise(whole, CHUNKED_REQUEST + body) if isinstance(e, bytes)]
    assert pieces == chunks  # one event per chunk, however the bytes arrived


@pytest.mark.parametrize(
    "size",
    [
        b"-6",
        b"+5",
        b" 5",
        b"\t5",
        b"5 ",
        b"0x5",
        b"1_0",
        b"g",
        b"",
        b";ext",
        b"1" * 17,  # more than 64 bits
        b"5;a\nb",  # a bare LF in an extension
        b"5;a\x00",
    ],
)
def test_bad_chunk_sizes(size: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"bad chunk size|control character"):
        Parser(server=True).feed(CHUNKED_REQUEST + size + b"\r\nhello\r\n")


def test_the_largest_chunk_size_is_accepted_and_awaited() -> None:
    parser = Parser(server=True)
    assert parser.feed(CHUNKED_REQUEST + b"f" * 16 + b"\r\nabc")[1:] == [b"abc"]
    assert not parser.idle


@pytest.mark.parametrize(
    ("data", "server", "value"),
    [
        (
            b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\tthree\r\nContent-Length: 0\r\n\r\n",
            False,
            "one two three",
        ),
        (b"HTTP/1.1 200 OK\r\nX-A:\r\n  two\r\nContent-Length: 0\r\n\r\n", False, "two"),
        (REQUEST_HEAD + b"X-A: one\r\n two\r\nContent-Length: 0\r\n\r\n", True, None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n", False, None),
        (REQUEST_HEAD[:-2] + b"\r\n leading: fold\r\n\r\n", True, None),
    ],
    ids=[
        "response",
        "response-empty-first-line",
        "request",
        "response-framing-field",
        "request-after-host",
    ],
)
def test_obs_fold_is_unfolded_in_responses_and_refused_in_requests(
    data: bytes, server: bool, value: str | None
) -> None:
    parser = Parser(server=server)
    if value is None:
        with pytest.raises(ProtocolError, match="bad header line"):
            parser.feed(data)
        return
    head = parser.feed(data)[0]
    assert isinstance(head, ResponseHead) and header(head.headers, "x-a") == value


def test_obs_fold_in_trailers_follows_the_same_rule() -> None:
    fold = b"0\r\nX-T: a\r\n b\r\n\r\n"
    assert Parser(server=False).feed(CHUNKED_RESPONSE + fold)[-1] == EndOfMessage((("x-t", "a b"),))
    with pytest.raises(ProtocolError, match="bad header line"):
        Parser(server=True).feed(CHUNKED_REQUEST + fold)


def _head_of_size(size: int) -> bytes:
    start = b"GET / HTTP/1.1\r\nX-Pad: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "in-pieces"])
def test_head_size_limit(bytewise: bool) -> None:
    exact = _head_of_size(MAX_HEAD)
    assert len(exact) == MAX_HEAD
    parser = Parser(server=True)
    events = parser.feed(exact) if not bytewise else parser.feed(exact[:-1]) + parser.feed(b"\n")
    assert events[-1] == END
    over = _head_of_size(MAX_HEAD + 1)
    parser = Parser(server=True)
    with pytest.raises(ProtocolError, match="too large"):
        if bytewise:
            parser.feed(over[: MAX_HEAD - 10])
        parser.feed(over[MAX_HEAD - 10 :] if bytewise else over)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (CHUNKED_REQUEST + b"0\r\nX-Pad: " + b"a" * MAX_HEAD, "trailer section too large"),
        (CHUNKED_REQUEST + b"5;" + b"x" * MAX_CHUNK_LINE, "chunk-size line too long"),
        (REQUEST_HEAD + b"Content-Length: " + b"1" * 20 + b"\r\n\r\n", "bad content-length"),
    ],
    ids=["trailers", "chunk-size-line", "content-length-digits"],
)
def test_other_limits(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        Parser(server=True).feed(data)


def test_nineteen_content_length_digits_are_accepted() -> None:
    parser = Parser(server=True)
    parser.feed(REQUEST_HEAD + b"Content-Length: " + b"9" * 19 + b"\r\n\r\nabc")
    assert not parser.idle


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "both"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "both"),
        (b"Content-Length: 3\r\nContent-Length: 3\r\n", "length"),
        (b"Content-Length: 3\r\nContent-Length: 4\r\n", "conflicting"),
        (b"Content-Length: 3, 3\r\n", "bad content-length"),
        (b"Content-Length: +3\r\n", "bad content-length"),
        (b"Content-Length: -1\r\n", "bad content-length"),
        (b"Content-Length: 3a\r\n", "bad content-length"),
        (b"Content-Length: \xb2\r\n", "bad content-length"),  # superscript two: isdigit() says yes
        (b"Content-Length:\r\n", "bad content-length"),
        (b"Content-Length:  3 \r\n", "length"),
        (b"Transfer-Encoding: gzip, chunked\r\n", "chunked"),
        (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "chunked"),
        (b"Transfer-Encoding: CHUNKED\r\n", "chunked"),
        (b"Transfer-Encoding: chunked, gzip\r\n", "unsupported"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "unsupported"),
        (b"Transfer-Encoding: identity\r\n", "unsupported"),
    ],
)
@pytest.mark.parametrize("server", [True, False], ids=["request", "response"])
def test_framing_fields(fields: bytes, outcome: str, server: bool) -> None:
    start = b"POST /r HTTP/1.1\r\n" if server else b"HTTP/1.1 200 OK\r\n"
    data = start + fields + b"\r\n"
    body = b"3\r\nabc\r\n0\r\n\r\n" if outcome == "chunked" else b"abc"
    parser = Parser(server=server)
    if outcome in ("length", "chunked"):
        assert body_of(parser.feed(data + body)) == b"abc"
        assert parser.idle
    else:
        with pytest.raises(ProtocolError, match=outcome):
            parser.feed(data + body)


@pytest.mark.parametrize(
    ("data", "server"),
    [
        (REQUEST_HEAD + b"Content-Length: 10\r\n\r\nshort", True),
        (CHUNKED_REQUEST + b"5\r\nhel", True),
        (CHUNKED_REQUEST + b"5\r\nhello", True),
        (CHUNKED_REQUEST + b"5\r\nhello\r\n", True),
        (CHUNKED_REQUEST + b"5", True),
        (CHUNKED_REQUEST + b"0\r\nX-T: 1\r\n", True),
        (REQUEST_HEAD, True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", False),
        (CHUNKED_RESPONSE + b"3\r\nab", False),
    ],
)
def test_truncated_messages_are_errors_at_close(data: bytes, server: bool) -> None:
    parser = Parser(server=server)
    parser.feed(data)
    with pytest.raises(ProtocolError, match="middle"):
        parser.close()


def test_close_between_messages_and_at_the_end_of_an_unframed_response() -> None:
    parser = Parser(server=True)
    parser.feed(NEXT + b"\r\n")
    assert parser.close() == []
    response = Parser(server=False)
    assert response.feed(b"HTTP/1.0 200 OK\r\n\r\nall of it") == [
        ResponseHead(200, "OK", (), b"HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0"),
        b"all of it",
    ]
    assert response.close() == [END]


@pytest.mark.parametrize(
    "line",
    [
        b"no colon here",
        b"Name : space before the colon",
        b"Na me: space in the name",
        b"(Name): a separator in the name",
        b"N\xe4me: not ASCII",
        b": no name",
        b"X-A: a\x01control character",
        b"X-A: a\x00nul",
        b"X-A: a\nbare LF",
        b"X-A: a\rbare CR",
        b"X-A: a\x7fdel",
    ],
)
def test_bad_header_lines(line: bytes) -> None:
    for start, server in ((b"GET / HTTP/1.1\r\n", True), (b"HTTP/1.1 200 OK\r\n", False)):
        with pytest.raises(ProtocolError, match=r"bad header line|control character"):
            Parser(server=server).feed(start + line + b"\r\n\r\n")


def test_good_header_lines() -> None:
    events = Parser(server=True).feed(
        b"GET / HTTP/1.1\r\nX-Tab:\tvalue with\ttab \t\r\nX-Obs-Text: caf\xe9\r\n"
        b"!#$%&'*+-.^_`|~09Az: token\r\nX-Empty:\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.headers == (
        ("x-tab", "value with\ttab"),
        ("x-obs-text", "café"),
        ("!#$%&'*+-.^_`|~09az", "token"),
        ("x-empty", ""),
    )


@pytest.mark.parametrize(
    ("line", "server"),
    [
        (b"GET  / HTTP/1.1", True),
        (b"GET / HTTP/2.0", True),
        (b"GET / HTTP/1.1 extra", True),
        (b"GET /", True),
        (b"G(T / HTTP/1.1", True),
        (b"GET /caf\xe9 HTTP/1.1", True),
        (b" GET / HTTP/1.1", True),
        (b"HTTP/1.1 2000 OK", False),
        (b"HTTP/1.1 20 OK", False),
        (b"HTTP/1.1 abc OK", False),
        (b"HTTP/2 200 OK", False),
        (b"HTTP/1.1  200 OK", False),
    ],
)
def test_bad_start_lines(line: bytes, server: bool) -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        Parser(server=server).feed(line + b"\r\n\r\n")


def test_start_lines_that_are_fine() -> None:
    [head, _] = Parser(server=False).feed(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(head, ResponseHead) and (head.status, head.reason) == (200, "")
    [head, _] = Parser(server=False).feed(b"HTTP/1.1 404 Not  Found\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(head, ResponseHead) and head.reason == "Not  Found"
    [head, _] = Parser(server=True).feed(b"OPTIONS * HTTP/1.0\r\n\r\n")
    assert isinstance(head, RequestHead) and (head.target, head.version) == ("*", "HTTP/1.0")


def test_a_parser_that_failed_refuses_more_input() -> None:
    parser = Parser(server=True)
    with pytest.raises(ProtocolError):
        parser.feed(b"GARBAGE\r\n\r\n")
    with pytest.raises(ProtocolError, match="already"):
        parser.feed(NEXT)


@pytest.mark.parametrize(
    ("version", "connection", "closes"),
    [
        ("HTTP/1.1", None, False),
        ("HTTP/1.1", "keep-alive", False),
        ("HTTP/1.1", "close", True),
        ("HTTP/1.1", "Close", True),
        ("HTTP/1.1", "te, close", True),
        ("HTTP/1.1", "closed", False),
        ("HTTP/1.0", None, True),
        ("HTTP/1.0", "keep-alive", True),  # HTTP/1.0 keep-alive is not honoured
    ],
)
def test_closes_connection(version: str, connection: str | None, closes: bool) -> None:
    assert closes_connection(version, connection) is closes


def test_events_are_immutable_values() -> None:
    head = RequestHead("GET", "/", (("host", "a"),), b"raw")
    assert head == RequestHead("GET", "/", (("host", "a"),), b"raw", "HTTP/1.1")
    assert head != RequestHead("GET", "/x", (("host", "a"),), b"raw")
    assert hash(head) == hash(RequestHead("GET", "/", (("host", "a"),), b"raw"))
    same_values: object = ((),)
    assert EndOfMessage() == END and same_values != END  # a record equals only its own kind
    assert repr(END) == "EndOfMessage(trailers=())"
    with pytest.raises(AttributeError):
        head.method = "POST"  # type: ignore[misc]


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_head_parsers_agree_with_the_parser(response: bytes) -> None:
    """The functions the runtime's fast path calls are the parser's own."""
    raw = response[: response.index(b"\r\n\r\n") + 4]
    head, framing = parse_response_head(raw)
    assert Parser(server=False).feed(response)[0] == head
    assert body_length(framing) == (
        5 if b"hello" in response else 0 if b": 0" in response else UNFRAMED
    )
    request, framing = parse_request_head(NEXT)
    assert Parser(server=True).feed(NEXT)[0] == request and body_length(framing) == UNFRAMED
    assert body_length([("transfer-encoding", "chunked")]) == CHUNKED
