"""A scriptable fake Runtime API on a real loopback socket, and a raw client, for proxy tests.

Both are blocking sockets served by threads, like the proxy itself; every thread and socket is
closed by the context managers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lambdakit.wire.http1 import EndOfMessage, Headers, RequestHead
from tests.http_fakes import MessageReader

OK_202 = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"status":"OK"}'
)
NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n"
TIMEOUT = 10.0


def event_reply(request_id: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\n"
        f"Lambda-Runtime-Deadline-Ms: 4102444800000\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def post(path: str, body: bytes, *extra: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    head = f"POST {path} HTTP/1.1\r\nHost: api\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass
class Seen:
    head: RequestHead
    body: bytearray = field(default_factory=bytearray)
    chunks: list[bytes] = field(default_factory=list)
    trailers: Headers = ()
    complete: threading.Event = field(default_factory=threading.Event)


#: What the fake answers a complete request with (None: never answer, a long poll).
Responder = Callable[[Seen], "bytes | None"]


def answer_next_and_accept(seen: Seen) -> bytes:
    if seen.head.method == "GET":
        return event_reply("req-1", b'{"n": 1}')
    return OK_202


class FakeRuntimeApi:
    """Records every request; answers each with ``responder(seen)``; a thread per connection."""

    def __init__(self, responder: Responder = answer_next_and_accept) -> None:
        self.responder = responder
        self.requests: list[Seen] = []
        self.connections = 0
        self.closed = threading.Event()
        self.first_chunk = threading.Event()
        self.got_request = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._socks: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in list(self._socks):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(TIMEOUT)

    def drop_connections(self) -> None:
        """Close every connection from our side (as a server closing idle keep-alives)."""
        for sock in list(self._socks):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        reader = MessageReader(sock, server=True)
        current: Seen | None = None
        try:
            while (event := reader.next_event()) is not None:
                if isinstance(event, RequestHead):
                    current = Seen(event)
                    self.requests.append(current)
                    self.got_request.set()
                elif isinstance(event, bytes):
                    assert current is not None
                    current.body += event
                    current.chunks.append(event)
                    self.first_chunk.set()
                elif isinstance(event, EndOfMessage):
                    assert current is not None
                    current.trailers = event.trailers
                    current.complete.set()
                    reply = self.responder(current)
                    if reply is not None:
                        sock.sendall(reply)
        except (OSError, EOFError):
            pass
        finally:
            self.closed.set()
            sock.close()


@contextlib.contextmanager
def fake_runtime_api(responder: Responder = answer_next_and_accept) -> Iterator[FakeRuntimeApi]:
    api = FakeRuntimeApi(responder)
    try:
        yield api
    finally:
        api.close()


class RawClient:
    """The runtime's side: a blocking socket that sends bytes as given and reads whole replies."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self._reader = MessageReader(self.sock, server=False, interim=True)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_head(self) -> bytes:
        """The head of the next reply, interim ones (100 Continue) included, as received."""
        message = self._reader.read_message()
        if message is None:
            raise ConnectionResetError("the proxy closed the connection")
        return message.head.raw

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        """The next final reply: status, header fields by lower-case name, body."""
        message = self._reader.read_response()
        return message.status, message.headers, message.body

    def at_eof(self) -> bool:
        """The proxy closed the connection (after any replies still unread)."""
        return self._reader.at_eof()

    def close(self) -> None:
        self.sock.close()
