"""HTTP/1.1 for the tests' fakes and raw clients, read with lambdakit's one codec.

The fakes (a Runtime API, an Extensions API, a bare server) and the raw clients talk to the code
under test over real loopback sockets.  What they read goes through
:class:`lambdakit.wire.http1.Parser`, the parser the runtime, the proxy and the extensions use,
so no test carries its own idea of what HTTP/1.1 is; what they write is spelled out in bytes,
so a test still sees exactly what went over the wire.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from lambdakit.wire.http1 import (
    EndOfMessage,
    Event,
    Headers,
    Parser,
    ProtocolError,
    RequestHead,
    ResponseHead,
)

RECV_SIZE = 65536


@dataclass
class Message:
    """One whole request or response."""

    head: RequestHead | ResponseHead
    body: bytes = b""
    #: The body's pieces as the parser gave them (with ``whole_chunks``, one per chunk).
    chunks: list[bytes] = field(default_factory=list)
    trailers: Headers = ()

    @property
    def status(self) -> int:
        assert isinstance(self.head, ResponseHead), self.head
        return self.head.status

    @property
    def headers(self) -> dict[str, str]:
        """Header fields by lower-case name (the last one of a repeated name)."""
        return dict(self.head.headers)


class MessageReader:
    """The messages arriving on a blocking socket: requests (``server=True``) or responses.

    ``whole_chunks`` and ``interim`` are the parser's options; ``record`` keeps the bytes
    received, for :meth:`take_recorded`.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        server: bool,
        whole_chunks: bool = False,
        interim: bool = False,
        record: bool = False,
    ) -> None:
        self.sock = sock
        self._parser = Parser(server=server, whole_chunks=whole_chunks, interim=interim)
        self._events: list[Event] = []
        self._record = record
        self._recorded = bytearray()

    def next_event(self) -> Event | None:
        """The next event; None once the peer has closed between messages.

        Raises :class:`~lambdakit.wire.http1.ProtocolError` for malformed bytes, EOFError if the
        peer closed in the middle of a message, and OSError from the socket.
        """
        while not self._events:
            data = self.sock.recv(RECV_SIZE)
            if not data:
                try:
                    self._events = self._parser.close()
                except ProtocolError as exc:
                    raise EOFError(str(exc)) from None
                if not self._events:
                    return None
            else:
                if self._record:
                    self._recorded += data
                self._events = self._parser.feed(data)
        return self._events.pop(0)

    def read_message(self) -> Message | None:
        """The next whole message; None once the peer has closed between messages."""
        head = self.next_event()
        if head is None:
            return None
        assert isinstance(head, (RequestHead, ResponseHead)), head
        message = Message(head)
        while True:
            event = self.next_event()
            if isinstance(event, bytes):
                message.chunks.append(event)
            elif isinstance(event, EndOfMessage):
                message.body = b"".join(message.chunks)
                message.trailers = event.trailers
                return message
            else:
                raise AssertionError(f"{event!r} in the middle of a message")

    def read_response(self) -> Message:
        """The next final response (interim ones are skipped); EOF is an error."""
        while True:
            message = self.read_message()
            if message is None:
                raise ConnectionResetError("the peer closed the connection")
            if message.status >= 200:
                return message

    def at_eof(self) -> bool:
        """The peer has closed the connection (after any messages still unread)."""
        return self.next_event() is None

    def take_recorded(self) -> bytes:
        """The bytes received since the last call, which must end where the last message ended
        (nothing pipelined behind it): for a fake that checks a message byte for byte."""
        assert self._record and not self._events and self._parser.idle, "a message is pending"
        data = bytes(self._recorded)
        self._recorded.clear()
        return data


def read_response(sock: socket.socket) -> Message:
    """The final response on ``sock`` (for the scripted runtimes: one call per connection)."""
    return MessageReader(sock, server=False).read_response()
