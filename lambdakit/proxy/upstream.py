"""Keep-alive connections to the real Runtime API, on blocking sockets.

A proxied call takes an idle connection from the :class:`UpstreamPool` (or opens one), writes
the call, reads the whole reply and gives the connection back before the reply goes on to the
runtime.  The pool is last-in first-out, so a runtime that makes its calls one after another on
one connection (most do) always gets the same upstream connection: one ``sendall`` and one
``recv`` on an established TCP_NODELAY socket per call, no handshake; a curl-based runtime,
which opens a connection per call, gets it too.  A ``GET next`` holds its connection for as
long as upstream holds the event; other calls meanwhile take another one.

An idle connection the server closed is noticed when a call is written to it: if no reply byte
came back, :class:`UpstreamError` says it is ``retryable`` and the caller sends the call again
on a fresh connection.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import NoReturn

from lambdakit.proxy.calls import ForwardedBody, Relayed, Reply, deadline_of, encode_reply
from lambdakit.proxy.relay import scan_reply
from lambdakit.proxy.sockets import EventReader, HungUp, peer_closed, set_nodelay, shut
from lambdakit.wire import headers as h
from lambdakit.wire.http1 import (
    Parser,
    ProtocolError,
    ResponseHead,
    closes_connection,
    encode_chunk,
    encode_last_chunk,
)

logger = logging.getLogger("lambdakit.proxy.upstream")

#: Idle connections kept (a runtime rarely has more than two calls in flight).
MAX_IDLE = 4


class UpstreamError(ConnectionError):
    """The call got no (complete) reply from upstream."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UpstreamConnection:
    """One connection to the Runtime API, used by one thread at a time, one call at a time."""

    __slots__ = ("_pool", "_reader", "_sock", "reusable", "used")

    def __init__(self, sock: socket.socket, pool: UpstreamPool) -> None:
        self._sock = sock
        self._pool = pool
        self._reader = EventReader(sock, Parser(server=False))
        #: The last reply left the connection fit for another call.
        self.reusable = True
        #: It has carried a call before (so the server may have closed it meanwhile).
        self.used = False

    def call(
        self,
        data: bytes,
        stream: ForwardedBody | None = None,
        *,
        head_only: bool = False,
        close: bool = False,
        watch: socket.socket | None = None,
    ) -> Reply:
        """Send ``data`` (then ``stream``'s chunks, if any) and return the reply.

        ``watch``: the runtime's socket, for calls that upstream may hold (``next``):
        :class:`~lambdakit.proxy.sockets.HungUp` if the runtime hangs up meanwhile.  Any
        failure closes the connection.
        """
        received = self._reader.received
        try:
            try:
                self._sock.sendall(data)
                if stream is not None:
                    for chunk in stream:
                        self._sock.sendall(encode_chunk(chunk))
                    self._sock.sendall(encode_last_chunk(stream.trailers))
            except OSError:
                if stream is not None and not stream.done:
                    raise  # the reply, if any, cannot be trusted while the body is unsent
                # Upstream may have answered and closed (or closed an idle connection): read on.
            if head_only:
                self._reader.expect_head_only()
        except BaseException as exc:
            self._fail(exc, received)
        return self.reply(received, close, watch)

    def exchange(self, data: bytes, watch: socket.socket | None = None) -> Relayed:
        """The fast lane's :meth:`call`: send ``data`` (a whole buffered call) and return the
        reply as bytes to pass on, with what :func:`~lambdakit.proxy.relay.scan_reply` found."""
        return self.take_reply(self.send(data), watch)

    def take_reply(self, received: int, watch: socket.socket | None = None) -> Relayed:
        """Read the reply to the call just sent (``received`` as :meth:`send` returned it):
        scanned when plain, through the codec otherwise; failures as in :meth:`call`."""
        try:
            head = self._reader.take_head(watch)
            if head:
                scan = scan_reply(head)
                if scan is not None:
                    status, length, request_id, deadline = scan
                    self.used = self.reusable = True
                    if length:
                        return head + self._reader.take_body(length), status, request_id, deadline
                    return head, status, request_id, deadline
                self._reader.give_back(head)
            elif head is not None:
                raise ConnectionResetError("the Runtime API closed the connection")
            reply = self._read_reply(False, watch if head is None else None)
        except BaseException as exc:
            self._fail(exc, received)
        self.used = True
        return (
            encode_reply(reply, True),
            reply.status,
            reply.header(h.REQUEST_ID) or "",
            deadline_of(reply),
        )

    @property
    def received(self) -> int:
        """Bytes read from upstream so far (a reply has begun when this grows)."""
        return self._reader.received

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, data: bytes) -> int:
        """Send a buffered call and return at once; :meth:`reply` (given what this returns)
        reads upstream's answer later.  Nothing is raised here: a failed send shows there."""
        received = self._reader.received
        # Not contextlib.suppress: it costs a context manager on every call of every invocation.
        try:  # noqa: SIM105
            self._sock.sendall(data)
        except OSError:
            pass  # upstream may have answered and closed: take_reply reads on
        return received

    def reply(self, received: int, close: bool, watch: socket.socket | None = None) -> Reply:
        """Read the reply to the call just sent (``received``: the byte count before it)."""
        try:
            reply = self._read_reply(close, watch)
        except BaseException as exc:
            self._fail(exc, received)
        self.used = True
        return reply

    def _fail(self, exc: BaseException, received: int) -> NoReturn:
        """Close the connection after ``exc`` and raise what the caller should see: an
        :class:`UpstreamError` (retryable if no reply byte came), or ``exc`` itself."""
        self.close()
        if isinstance(exc, ProtocolError):
            raise UpstreamError(f"malformed reply from the Runtime API: {exc}") from exc
        if isinstance(exc, OSError) and not isinstance(exc, (HungUp, UpstreamError)):
            retryable = self.used and self._reader.received == received
            raise UpstreamError(f"the Runtime API connection failed: {exc}", retryable) from exc
        raise exc

    def _read_reply(self, close: bool, watch: socket.socket | None) -> Reply:
        head = self._reader.next(watch)
        if head is None:
            raise ConnectionResetError("the Runtime API closed the connection")
        if type(head) is not ResponseHead:
            raise ProtocolError("expected a response head")
        body = self._reader.body()
        length: str | None = None
        chunked = False
        connection: str | None = None
        status, reason, fields, raw, version = head
        for name, value in fields:
            if name == h.CONTENT_LENGTH:
                length = value
            elif name == h.TRANSFER_ENCODING:
                chunked = True
            elif name == h.CONNECTION:
                connection = value if connection is None else f"{connection}, {value}"
        close = close or closes_connection(version, connection)
        bodiless = status in (204, 304)
        # Kept as received (raw) unless it must be re-encoded: chunked or read until close.
        framed = not chunked and (length is not None or bodiless)
        self.reusable = not close and (chunked or framed)
        return Reply(status, reason, fields, body, raw + body if framed else b"")

    def shutdown(self) -> None:
        """Wake the thread using this connection (any thread may call this)."""
        shut(self._sock)

    def close(self) -> None:
        self.reusable = False
        self._pool.forget(self)
        self._sock.close()


class UpstreamPool:
    """Connections to one Runtime API address, shared by the proxy's threads."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection] = set()
        self._closed = False

    def acquire(self, check_alive: bool = False) -> UpstreamConnection:
        """An idle connection (the most recently used), or a new one; UpstreamError if none.

        With ``check_alive``, idle connections the server has closed are dropped first.
        """
        while True:
            with self._lock:
                if self._closed:
                    raise UpstreamError("the proxy is closed")
                if not self._idle:
                    break
                connection = self._idle.pop()
            if not check_alive or not peer_closed(connection._sock):
                return connection
            connection.close()  # went stale while idle: a streamed body could not be replayed
        try:
            sock = socket.create_connection((self.host, self.port))
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to the Runtime API at {self.host}:{self.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        set_nodelay(sock)
        connection = UpstreamConnection(sock, self)
        with self._lock:
            self._all.add(connection)
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        """Take back a connection after a complete call (closed if it is not reusable)."""
        with self._lock:
            keep = connection.reusable and not self._closed and len(self._idle) < MAX_IDLE
            if keep:
                self._idle.append(connection)
        if not keep:
            connection.close()

    def forget(self, connection: UpstreamConnection) -> None:
        with self._lock:
            self._all.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)

    def close(self) -> None:
        """Close idle connections and wake the threads using the others (they close them)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._all.difference(idle)
        for connection in idle:
            connection.close()
        for connection in busy:
            connection.shutdown()
