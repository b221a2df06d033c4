"""``lambdakit invoke``'s event-stream reader, against the frames lambdakit.wire writes."""

from __future__ import annotations

import uuid

import pytest

from lambdakit.invoke_client import Endpoint, FrameReader
from lambdakit.wire.eventstream import (
    EventStreamError,
    Header,
    HeaderType,
    InvokeComplete,
    PayloadChunk,
    StreamException,
    encode_message,
)


def test_frames_split_at_any_byte_are_read_whole() -> None:
    body = (
        PayloadChunk(b"first").encode()
        + PayloadChunk(b"\x00second").encode()
        + InvokeComplete(error_code="Unhandled", error_details="boom").encode()
    )
    for size in (1, 3, 7, len(body)):
        reader = FrameReader()
        frames = []
        for start in range(0, len(body), size):
            frames += reader.feed(body[start : start + size])
        assert [f.payload for f in frames[:2]] == [b"first", b"\x00second"]
        assert [f.headers[":event-type"] for f in frames] == [
            "PayloadChunk",
            "PayloadChunk",
            "InvokeComplete",
        ]
        assert b'"ErrorCode":"Unhandled"' in frames[2].payload


def test_every_header_type_is_skipped_or_read() -> None:
    headers = [
        Header("t", True, HeaderType.BOOL_TRUE),
        Header("f", False, HeaderType.BOOL_FALSE),
        Header("b", 1, HeaderType.BYTE),
        Header("s", 2, HeaderType.SHORT),
        Header("i", 3, HeaderType.INTEGER),
        Header("l", 4, HeaderType.LONG),
        Header("a", b"xyz", HeaderType.BYTE_ARRAY),
        Header("ts", 5, HeaderType.TIMESTAMP),
        Header("u", uuid.uuid4(), HeaderType.UUID),
        Header(":event-type", "PayloadChunk"),
    ]
    (frame,) = FrameReader().feed(encode_message(headers, b"data"))
    assert frame.headers == {":event-type": "PayloadChunk"} and frame.payload == b"data"


def test_error_frames_keep_their_code_and_message() -> None:
    (frame,) = FrameReader().feed(StreamException("Throttled", "slow down").encode())
    assert frame.headers[":error-code"] == "Throttled"
    assert frame.headers[":error-message"] == "slow down"


@pytest.mark.parametrize("index", [5, 20, -1])
def test_a_corrupt_frame_is_an_error(index: int) -> None:
    frame = bytearray(PayloadChunk(b"payload").encode())
    frame[index] ^= 0xFF
    with pytest.raises(EventStreamError):
        FrameReader().feed(bytes(frame))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9000", ("127.0.0.1", 9000, False)),
        ("localhost:8080", ("localhost", 8080, False)),
        ("https://lambda.example", ("lambda.example", 443, True)),
    ],
)
def test_endpoints(url: str, expected: tuple[str, int, bool]) -> None:
    endpoint = Endpoint.parse(url)
    assert (endpoint.host, endpoint.port, endpoint.https) == expected


@pytest.mark.parametrize("url", ["ftp://x", "http://h:99999", "http://h/path"])
def test_bad_endpoints_name_the_flag(url: str) -> None:
    with pytest.raises(ValueError, match=r"^--endpoint: "):
        Endpoint.parse(url)
