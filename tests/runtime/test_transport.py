"""The raw-socket HTTP/1.1 client, against small real servers on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from lambdakit.runtime.transport import Connection, RuntimeApiError

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
            with conn:
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    buffer = rest[length:]
                    if not reply(conn, head + b"\r\n\r\n" + rest[:length]):
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
