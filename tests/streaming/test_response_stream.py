"""``ResponseStream`` and ``HttpPrelude`` in memory, and the chunked upload on a real socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from lambdakit.runtime.transport import Connection
from lambdakit.streaming import HttpPrelude, ResponseStream, StreamingResponse, streamify_response
from tests.http_fakes import MessageReader


class MemorySink:
    def __init__(self, log: list[object], content_type: str) -> None:
        self.log = log
        log.append(("open", content_type))

    def write(self, data: bytes) -> None:
        self.log.append(data)

    def finish(self, trailers: Sequence[tuple[str, str]]) -> None:
        self.log.append(("finish", list(trailers)))


def _stream() -> tuple[ResponseStream, list[object]]:
    log: list[object] = []
    return ResponseStream(lambda content_type: MemorySink(log, content_type)), log


def test_nothing_is_sent_before_the_first_byte() -> None:
    stream, log = _stream()
    stream.set_content_type("text/csv")
    assert stream.write(b"") == 0
    assert (log, stream.started) == ([], False)
    assert stream.write("a,é\n") == 4
    stream.write(bytearray(b"x"))
    stream.write(memoryview(b"y"))
    stream.close()
    stream.close()  # idempotent
    assert log == [("open", "text/csv"), "a,é\n".encode(), b"x", b"y", ("finish", [])]
    assert stream.closed


def test_after_the_first_byte_the_head_is_fixed() -> None:
    stream, _ = _stream()
    stream.write("x")
    with pytest.raises(ValueError, match="cannot set the content type after"):
        stream.set_content_type("text/plain")
    with pytest.raises(ValueError, match="cannot set the HTTP prelude after"):
        stream.set_http_prelude(200)
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        stream.write("more")


def test_write_refuses_other_types() -> None:
    stream, _ = _stream()
    with pytest.raises(TypeError, match="bytes or str, not int"):
        stream.write(3)  # type: ignore[arg-type]


def test_prelude_goes_out_with_the_first_bytes_or_alone_at_close() -> None:
    stream, log = _stream()
    stream.set_http_prelude(302, {"location": "/x"}, ["a=b"])
    stream.write("body")
    prelude = b'{"statusCode": 302, "headers": {"location": "/x"}, "cookies": ["a=b"]}'
    assert log == [
        ("open", "application/vnd.awslambda.http-integration-response"),
        prelude + b"\0" * 8 + b"body",
    ]
    stream, log = _stream()
    stream.set_http_prelude()
    stream.close()
    assert log[1] == b'{"statusCode": 200, "headers": {}, "cookies": []}' + b"\0" * 8


def test_set_content_type_after_a_prelude_drops_it() -> None:
    stream, log = _stream()
    stream.set_http_prelude(200)
    stream.set_content_type("text/plain")
    stream.write("x")
    assert log == [("open", "text/plain"), b"x"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((99,), "100 to 599"),
        ((True,), "must be an int"),
        ((200, None, "a=b"), "list of Set-Cookie"),
    ],
)
def test_http_prelude_validation(args: tuple[object, ...], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        HttpPrelude(*args)  # type: ignore[arg-type]


def test_http_prelude_is_immutable_and_compares_by_value() -> None:
    prelude = HttpPrelude(200, {"a": "b"})
    assert prelude == HttpPrelude(200, {"a": "b"}, [])
    with pytest.raises(AttributeError):
        prelude.status_code = 500


def test_streamify_response_defers_the_call() -> None:
    def handler(event: object, response_stream: ResponseStream, context: object) -> None:
        """Doc."""

    wrapped = streamify_response(handler)
    assert (wrapped.__name__, wrapped.__doc__) == ("handler", "Doc.")
    result = wrapped({"e": 1}, None)
    assert isinstance(result, StreamingResponse)
    assert (result.handler, result.event, result.context) == (handler, {"e": 1}, None)


# --- the chunked upload on a real socket ----------------------------------------------------


@contextlib.contextmanager
def _server(received: list[bytes]) -> Iterator[tuple[str, list[int]]]:
    """First connection: answer one GET, then close it silently.  Later ones: read a chunked
    POST to its end and answer 202."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted = [0]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            with conn:
                reader = MessageReader(conn, server=True, record=True)
                reader.read_message()
                received.append(reader.take_recorded())
                status = b"200 OK" if accepted[0] == 1 else b"202 Accepted"
                conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: 2\r\n\r\nok" % status)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def test_chunked_upload_replaces_a_connection_the_server_closed() -> None:
    received: list[bytes] = []
    with _server(received) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            assert client.request("GET", "/next").status == 200
            # Wait until the server has closed the kept connection.
            for _ in range(500):
                if len(received) == 1 and accepted[0] == 1:
                    break
                threading.Event().wait(0.01)
            threading.Event().wait(0.1)
            upload = client.start_chunked("POST", "/response", [("x-a", "b")])
            upload.write(b"hello")
            upload.write(b"")
            upload.write(b" world")
            response = upload.finish([("x-trailer", "t")])
        finally:
            client.close()
    assert (response.status, response.body, accepted[0]) == (202, b"ok", 2)
    head, _, body = received[1].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /response HTTP/1.1\r\nx-a: b\r\ntransfer-encoding: chunked\r\n")
    assert body == b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
