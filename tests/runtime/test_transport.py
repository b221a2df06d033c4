"""The raw-socket HTTP/1.1 client, against small real servers on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lambdakit.runtime.transport import Connection, RuntimeApiError
from tests.http_fakes import MessageReader

Reply = Callable[[socket.socket, bytes], bool]  # (conn, request) -> keep the connection open?


@contextlib.contextmanager
def server(reply: Reply) -> Iterator[tuple[str, list[int]]]:
    """A one-thread server; yields its address and a one-item list counting connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            with conn, contextlib.suppress(EOFError):  # a client gone mid-request
                reader = MessageReader(conn, server=True, record=True)
                while reader.read_message() is not None:
                    if not reply(conn, reader.take_recorded()):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(5)


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_keep_alive_reuses_one_connection() -> None:
    seen: list[bytes] = []

    def reply(conn: socket.socket, request: bytes) -> bool:
        seen.append(request)
        conn.sendall(_ok(b"pong"))
        return True

    with server(reply) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            first = client.request("GET", "/a")
            second = client.request(
                "POST", "/b", b'{"x": 1}', [("content-type", "application/json")]
            )
        finally:
            client.close()
    assert (first.status, first.body, second.body) == (200, b"pong", b"pong")
    assert accepted[0] == 1
    assert seen[1].startswith(b"POST /b HTTP/1.1\r\n")
    assert b"content-length: 8\r\n" in seen[1] and seen[1].endswith(b'{"x": 1}')


def test_chunked_response_with_trailers() -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        return True

    with server(reply) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            responses = [client.request("GET", "/") for _ in range(2)]
        finally:
            client.close()
    assert [r.body for r in responses] == [b"hello world"] * 2
    assert responses[0].headers["x-a"] == "b"
    assert accepted[0] == 1


def test_server_closing_an_idle_connection_is_retried_transparently() -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(_ok(b"once"))
        return False  # close without saying so

    with server(reply) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            bodies = [client.request("GET", "/").body for _ in range(3)]
        finally:
            client.close()
    assert bodies == [b"once"] * 3
    assert accepted[0] == 3


def test_connection_close_and_body_to_eof() -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nuntil-eof")
        return False

    with server(reply) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            bodies = [client.request("POST", "/", b"x").body for _ in range(2)]
        finally:
            client.close()
    assert bodies == [b"until-eof"] * 2
    assert accepted[0] == 2


def test_unreachable_server_names_the_address() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        client = Connection(address, "test/1")
        with pytest.raises(RuntimeApiError, match=address):
            client.request("GET", "/2018-06-01/runtime/invocation/next")


def test_bad_address() -> None:
    with pytest.raises(RuntimeApiError, match="host:port"):
        Connection("no-port", "test/1")


@pytest.mark.parametrize("size", [b"+5", b" 5", b"0x5", b"-5", b"5_0", b"1" * 17])
def test_chunk_sizes_the_codec_refuses_are_refused(size: bytes) -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0\r\n\r\n" % size
        )
        return True

    with server(reply) as (address, _):
        client = Connection(address, "test/1")
        try:
            with pytest.raises(RuntimeApiError, match=r"malformed response.*bad chunk size"):
                client.request("GET", "/")
        finally:
            client.close()


@pytest.mark.parametrize(
    ("pieces", "body", "connections"),
    [
        # Each read in one recv (the fast path), or cut so that the parser takes over.
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"], b"hello", 1),
        ([b"HTTP/1.1 200 OK\r\nContent-", b"Length: 5\r\n\r\nhello"], b"hello", 1),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", b"llo"], b"hello", 1),
        (
            [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            b"ok",
            1,
        ),
        ([b"HTTP/1.1 204 No Content\r\n\r\n"], b"", 1),
        ([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], b"ok", 2),  # 1.0: not kept
        ([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"], b"ok", 2),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"], b"ok", 2),  # more: not kept
    ],
)
def test_responses_however_they_arrive(pieces: list[bytes], body: bytes, connections: int) -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(0.02)  # separate reads
        return True

    with server(reply) as (address, accepted):
        client = Connection(address, "test/1")
        try:
            bodies = [client.request("GET", "/").body for _ in range(2)]
        finally:
            client.close()
    assert bodies == [body, body]
    assert accepted[0] == connections


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", "control character"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", "bad header line"),
        (b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", "malformed status line"),
    ],
)
def test_malformed_responses_are_refused(response: bytes, match: str) -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(response)
        return True

    with server(reply) as (address, _):
        client = Connection(address, "test/1")
        try:
            with pytest.raises(RuntimeApiError, match=match):
                client.request("GET", "/")
        finally:
            client.close()


def test_a_response_cut_short_is_an_error() -> None:
    def reply(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        return False

    with server(reply) as (address, _):
        client = Connection(address, "test/1")
        try:
            with pytest.raises(RuntimeApiError, match="closed the connection mid-response"):
                client.request("GET", "/")
        finally:
            client.close()
