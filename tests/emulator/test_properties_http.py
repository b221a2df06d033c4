"""Property-based tests of the HTTP layer: the I/O-free codec, then a real serve's socket.

Random request heads, bodies and the places where the bytes are cut: the codec parses every
well-formed request whole however it is cut, and refuses anything else with a 4xx
``ProtocolError`` (never another exception); a real ``lambdakit serve`` answers every request
with a well-formed HTTP/1.1 answer and never a 5xx, and keeps serving afterwards.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdakit.emulator.http.codec import ProtocolError, RequestReader
from tests.emulator.http_strategies import (
    KNOWN_HEADERS,
    PATH_CHARS,
    TOKEN,
    RawRequest,
    bodies,
    bounded,
    cuts,
    exchange,
    paths_under,
    read_answer,
    requests,
    split,
)
from tests.serving import REPO, Serve, running_serve

CHAOS = REPO / "tests" / "fixtures" / "functions" / "chaos"
MAX_BODY = 6 * 1024 * 1024

# Header values a conforming client may send: visible ASCII, space, tab-free, and obs-text.
_VALUE_CHARS = st.characters(
    min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f", blacklist_categories=()
)
_valid_values = st.text(alphabet=_VALUE_CHARS, max_size=30).map(str.strip)
#: Fields that change the framing or the connection: the requests set them themselves.
_FRAMING = ("host", "content-length", "transfer-encoding", "expect", "connection", "upgrade")
_valid_requests = st.builds(
    RawRequest,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    target=st.builds(
        lambda path, query: "/" + path + (f"?{query}" if query else ""),
        st.text(PATH_CHARS, max_size=40),
        st.text(PATH_CHARS + "?", max_size=20),
    ),
    headers=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(KNOWN_HEADERS), st.text(TOKEN, min_size=1, max_size=16)),
            _valid_values,
        ).filter(lambda f: f[0].lower() not in _FRAMING),
        max_size=8,
    ).map(tuple),
    body=bodies,
    chunked=st.booleans(),
    cuts=cuts,
)
#: Bytes that break HTTP/1.1 framing where they land.
_BAD_BYTES = [b"\x00", b"\n", b"\r", b" ", b"\x7f", b":", b"\xff", b"\r\n\r\n", b"\t", b"0x"]


def _mutate(data: bytes, where: int, bad: bytes, replace: bool) -> bytes:
    at = where % (len(data) + 1)
    return data[:at] + bad + data[at + (1 if replace else 0) :]


def _feed(pieces: list[bytes]) -> RequestReader:
    reader = RequestReader(MAX_BODY)
    for piece in pieces:
        reader.feed(piece)
    return reader


# --- the codec, without I/O ------------------------------------------------------------------
@bounded(150)
@given(
    request=_valid_requests,
    mutation=st.none()
    | st.tuples(st.integers(min_value=0, max_value=5000), st.sampled_from(_BAD_BYTES)),
)
def test_a_request_read_whole_by_the_scan_is_read_as_llhttp_reads_it(
    request: RawRequest, mutation: tuple[int, bytes] | None
) -> None:
    """Fed in one piece, a plain request takes the codec's scan; fed a byte at a time, llhttp.
    Both give the same Request, or both refuse it (with a bad byte somewhere in it)."""
    data = request.encode()
    if mutation is not None:
        where, bad = mutation
        data = _mutate(data, where, bad, replace=True)
    outcomes: list[object] = []
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        try:
            reader = _feed(pieces)
        except ProtocolError as exc:
            outcomes.append(("refused", exc.status))
        else:
            outcomes.append(("read", list(reader.requests)))
    assert outcomes[0] == outcomes[1]


@bounded(150)
@given(request=_valid_requests, pipelined=st.integers(min_value=1, max_value=3))
def test_the_codec_parses_any_well_formed_request_however_its_bytes_are_cut(
    request: RawRequest, pipelined: int
) -> None:
    data = request.encode() * pipelined
    reader = _feed(split(data, request.cuts))
    assert len(reader.requests) == pipelined
    path, _, query = request.target.partition("?")
    expected_headers: dict[str, str] = {"host": "lambdakit"}
    for name, value in request.headers:
        expected_headers[name.lower()] = value
    for parsed in reader.requests:
        assert (parsed.method, parsed.path, parsed.query) == (request.method, path, query)
        assert parsed.body == request.body
        assert not parsed.body_too_large
        for name, value in expected_headers.items():
            assert parsed.headers[name] == value


@bounded(150)
@given(
    request=_valid_requests,
    where=st.integers(min_value=0, max_value=5000),
    bad=st.sampled_from(_BAD_BYTES),
    replace=st.booleans(),
)
def test_the_codec_refuses_broken_framing_with_a_4xx_and_nothing_else(
    request: RawRequest, where: int, bad: bytes, replace: bool
) -> None:
    data = _mutate(request.encode(), where, bad, replace)
    try:
        _feed(split(data, request.cuts))
    except ProtocolError as exc:
        assert 400 <= exc.status < 500, exc


@bounded(150)
@given(data=st.binary(max_size=500), at=cuts)
def test_the_codec_takes_any_bytes_without_crashing(data: bytes, at: tuple[int, ...]) -> None:
    try:
        reader = _feed(split(data, at))
    except ProtocolError as exc:
        assert 400 <= exc.status < 500, exc
    else:
        for parsed in reader.requests:
            assert parsed.method


@bounded(10)
@given(head=st.integers(min_value=65 * 1024, max_value=80 * 1024), fields=st.booleans())
def test_the_codec_refuses_oversized_heads_with_431(head: int, fields: bool) -> None:
    if fields:
        data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(head // 10))
    else:
        data = b"GET /" + b"a" * head + b" HTTP/1.1\r\n"
    with pytest.raises(ProtocolError) as refused:
        _feed(split(data + b"\r\n", (1000, 30000)))
    assert refused.value.status == 431


# --- a real serve's socket -------------------------------------------------------------------
@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with running_serve(
        "--function-name",
        "echo",
        "--runtime",
        "python",
        "--code-dir",
        str(CHAOS),
        "--handler",
        "app.echo",
        "--concurrency",
        "2",
        "--timeout",
        "10",
    ) as running:
        yield running
        _assert_still_serving(running)


def _assert_still_serving(serve: Serve) -> None:
    status, headers, body = serve.invoke("echo", b'{"still": "here"}')
    assert (status, body) == (200, b'{"still": "here"}'), (status, headers, body)
    assert "Traceback" not in serve.errors()


VALID_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
_SERVE_PATHS = paths_under(
    "/2015-03-31/functions/echo/invocations",
    "/2015-03-31/functions/",
    "/2021-11-15/functions/echo/response-streaming-invocations",
    "/2014-11-13/functions/echo/invoke-async",
    "/2015-03-31/functions/echo",
    "/_lambdakit/",
    "/metrics",
)


@bounded(60)
@given(request=requests(_SERVE_PATHS))
def test_serve_answers_every_request_well_formed_and_never_with_a_5xx(
    serve: Serve, request: RawRequest
) -> None:
    answer = exchange(serve.host, serve.port, request.pieces())
    if answer is None:  # refused before all of it was sent: only a request that is not HTTP
        assert request.method not in VALID_METHODS, request
        return
    assert answer.status < 500, (request, answer)
    if request.method not in VALID_METHODS:
        assert 400 <= answer.status < 500, (request, answer)
    assert not answer.extra, (request, answer)


@bounded(40)
@given(
    request=requests(_SERVE_PATHS),
    where=st.integers(min_value=0, max_value=5000),
    bad=st.sampled_from(_BAD_BYTES),
    replace=st.booleans(),
)
def test_serve_answers_broken_requests_with_a_4xx_or_closes(
    serve: Serve, request: RawRequest, where: int, bad: bytes, replace: bool
) -> None:
    data = _mutate(request.encode(), where, bad, replace)
    answer = exchange(serve.host, serve.port, split(data, request.cuts), half_close=True)
    if answer is not None:  # None: the request never ended, the connection closed unanswered
        assert answer.status < 500, (data, answer)


@pytest.mark.parametrize(
    "target", ["/2015-03-31/functions/echo/invocations", "/2015-03-31/functions/echo", "/nowhere"]
)
def test_an_answer_to_head_carries_no_body(serve: Serve, target: str) -> None:
    with socket.create_connection((serve.host, serve.port), timeout=10) as sock:
        sock.sendall(
            f"HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + b"POST /2015-03-31/functions/nothing-here/invocations HTTP/1.1\r\nHost: x\r\n"
            + b"Content-Length: 2\r\n\r\n{}"
        )
        buf = bytearray()
        first = read_answer(sock, 10, head_request=True, buf=buf)
        assert first.status < 500
        second = read_answer(sock, 10, buf=buf)
    assert second.status == 404
    assert json.loads(second.body)["Type"] == "User"
