"""Event-stream frames against botocore's own parser and boto3's ``invoke_with_response_stream``."""

from __future__ import annotations

import contextlib
import http.server
import threading
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch as BotoChecksumMismatch
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError as BotoEventStreamError

from lambdakit.wire import eventstream as es
from tests.wire import eventstream_decoder as esd

ALL_TYPES = (
    es.Header("t", True, es.HeaderType.BOOL_TRUE),
    es.Header("f", False, es.HeaderType.BOOL_FALSE),
    es.Header("byte", -7, es.HeaderType.BYTE),
    es.Header("short", -30000, es.HeaderType.SHORT),
    es.Header("int", 2_000_000_000, es.HeaderType.INTEGER),
    es.Header("long", -(2**62), es.HeaderType.LONG),
    es.Header("bytes", b"\x00\xff raw", es.HeaderType.BYTE_ARRAY),
    es.Header("str", "héllo", es.HeaderType.STRING),
    es.Header("ts", 1_700_000_000_123, es.HeaderType.TIMESTAMP),
    es.Header("id", uuid.UUID("12345678-1234-5678-1234-567812345678"), es.HeaderType.UUID),
)


def _botocore_parse(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(message.headers, message.payload) for message in buffer]


def test_empty_message_is_the_16_byte_reference_frame() -> None:
    # The event-stream spec's smallest message: lengths 16 and 0, then the two CRCs.
    frame = es.encode_message()
    assert frame == bytes.fromhex("00000010 00000000 05c248eb 7d98c8ff")
    assert _botocore_parse(frame) == [({}, b"")]


def test_payload_chunk_parses_in_botocore() -> None:
    frame = es.PayloadChunk(b"hello \x00 world").encode()
    assert _botocore_parse(frame) == [
        (
            {
                ":event-type": "PayloadChunk",
                ":content-type": "application/octet-stream",
                ":message-type": "event",
            },
            b"hello \x00 world",
        )
    ]


def test_invoke_complete_parses_in_botocore() -> None:
    frame = es.InvokeComplete("Unhandled", "boom", "bG9n").encode()
    [(headers, payload)] = _botocore_parse(frame)
    assert headers == {
        ":event-type": "InvokeComplete",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert payload == b'{"ErrorCode":"Unhandled","ErrorDetails":"boom","LogResult":"bG9n"}'
    assert _botocore_parse(es.InvokeComplete().encode())[0][1] == b"{}"


def test_every_header_type_round_trips_and_matches_botocore() -> None:
    frame = es.encode_message(ALL_TYPES, b"payload")
    [(headers, payload)] = _botocore_parse(frame)
    assert payload == b"payload"
    # botocore returns timestamps as epoch milliseconds and UUIDs as their 16 bytes.
    expected = {h.name: h.value for h in ALL_TYPES}
    expected["id"] = ALL_TYPES[-1].value.bytes  # type: ignore[union-attr]
    assert headers == expected
    [message] = esd.decode_messages(frame)
    assert message.headers == ALL_TYPES
    assert message.payload == b"payload"
    assert message.encode() == frame


def test_decoder_is_incremental_byte_by_byte() -> None:
    data = b"".join(
        [
            es.PayloadChunk(b"a").encode(),
            es.PayloadChunk(b"").encode(),
            es.InvokeComplete().encode(),
        ]
    )
    decoder = esd.EventStreamDecoder()
    messages = []
    for i in range(len(data)):
        messages.extend(decoder.feed(data[i : i + 1]))
    assert decoder.pending == 0
    events = [esd.invoke_stream_event(m) for m in messages]
    assert events == [es.PayloadChunk(b"a"), es.PayloadChunk(b""), es.InvokeComplete()]


def test_corrupt_frames_are_rejected_by_both_parsers() -> None:
    frame = bytearray(es.PayloadChunk(b"data").encode())
    frame[-6] ^= 1  # a payload bit: the message CRC no longer matches
    with pytest.raises(esd.ChecksumMismatch, match="message CRC32"):
        esd.decode_messages(bytes(frame))
    with pytest.raises(BotoChecksumMismatch):
        _botocore_parse(bytes(frame))
    frame = bytearray(es.PayloadChunk(b"data").encode())
    frame[3] ^= 1  # the total length: the prelude CRC no longer matches
    with pytest.raises(esd.ChecksumMismatch, match="prelude CRC32"):
        esd.decode_messages(bytes(frame))


def test_decode_messages_refuses_a_partial_frame() -> None:
    frame = es.InvokeComplete().encode()
    with pytest.raises(es.EventStreamError, match="trailing bytes"):
        esd.decode_messages(frame + frame[:5])


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (es.Header("", "x"), "1 to 255 bytes"),
        (es.Header("n" * 256, "x"), "1 to 255 bytes"),
        (es.Header("n", 128, es.HeaderType.BYTE), "does not fit"),
        (es.Header("n", "x", es.HeaderType.INTEGER), "needs an int"),
        (es.Header("n", b"x", es.HeaderType.STRING), "needs str"),
        (es.Header("n", False, es.HeaderType.BOOL_TRUE), "needs value True"),
        (es.Header("n", "x" * 65536), "longer than 65,535"),
    ],
)
def test_encoder_refuses_bad_headers(header: es.Header, error: str) -> None:
    with pytest.raises(es.EventStreamError, match=error):
        es.encode_message([header])


def test_encoder_refuses_duplicates_and_oversized_payloads() -> None:
    with pytest.raises(es.EventStreamError, match="duplicate"):
        es.encode_message([es.Header("a", "1"), es.Header("a", "2")])
    with pytest.raises(es.EventStreamError, match="payload is"):
        es.encode_message({}, b"x" * (es.MAX_PAYLOAD_LENGTH + 1))


def test_large_payloads_are_split_into_frames_botocore_accepts() -> None:
    data = bytes(range(256)) * 40
    frames = list(es.encode_payload_chunks(data, max_size=1000))
    assert len(frames) == 11
    assert b"".join(p for _, p in _botocore_parse(b"".join(frames))) == data


def test_exception_frames() -> None:
    frame = es.StreamException("ServiceException", "it broke").encode()
    [message] = esd.decode_messages(frame)
    event = esd.invoke_stream_event(message)
    assert isinstance(event, es.StreamException)
    assert (event.code, event.message) == ("ServiceException", "it broke")


# --- boto3 against a local HTTP server answering our frames -----------------------------------


class _Recorder:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.paths: list[str] = []


@contextlib.contextmanager
def _frames_server(pieces: list[bytes]) -> Iterator[tuple[str, _Recorder]]:
    """An HTTP server answering every POST with ``pieces`` as the chunks of an event stream."""
    recorder = _Recorder(pieces)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            recorder.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", es.CONTENT_TYPE)
            self.send_header("X-Amz-Executed-Version", "$LATEST")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in recorder.pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _lambda(url: str):
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
    )


def test_boto3_reads_payload_chunks_and_invoke_complete() -> None:
    stream = b"".join(
        [
            es.PayloadChunk(b"hello ").encode(),
            es.PayloadChunk(b"world").encode(),
            es.InvokeComplete("Unhandled", '{"errorType": "ValueError"}', "dGFpbA==").encode(),
        ]
    )
    # HTTP chunks that cut frames at awkward places, as a real network may.
    pieces = [stream[:5], stream[5:40], stream[40:41], stream[41:]]
    with _frames_server(pieces) as (url, recorder):
        response = _lambda(url).invoke_with_response_stream(FunctionName="myfn", Payload=b"{}")
        events = list(response["EventStream"])
    assert recorder.paths == ["/2021-11-15/functions/myfn/response-streaming-invocations"]
    assert response["ResponseStreamContentType"] == es.CONTENT_TYPE
    assert response["ExecutedVersion"] == "$LATEST"
    assert events == [
        {"PayloadChunk": {"Payload": b"hello "}},
        {"PayloadChunk": {"Payload": b"world"}},
        {
            "InvokeComplete": {
                "ErrorCode": "Unhandled",
                "ErrorDetails": '{"errorType": "ValueError"}',
                "LogResult": "dGFpbA==",
            }
        },
    ]


def test_boto3_raises_on_an_exception_frame() -> None:
    pieces = [
        es.PayloadChunk(b"partial").encode(),
        es.StreamException("ServiceException", "it broke").encode(),
    ]
    with _frames_server(pieces) as (url, _):
        response = _lambda(url).invoke_with_response_stream(FunctionName="myfn", Payload=b"{}")
        stream = iter(response["EventStream"])
        try:
            assert next(stream) == {"PayloadChunk": {"Payload": b"partial"}}
            with pytest.raises(BotoEventStreamError, match=r"\(ServiceException\).*it broke"):
                next(stream)
        finally:
            response["EventStream"].close()
