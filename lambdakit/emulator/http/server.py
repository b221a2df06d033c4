"""The asyncio layer of the HTTP server: moves bytes between sockets and the codec.

One :class:`HttpProtocol` per connection.  Requests are answered strictly in order: while a
reply is pending (a :class:`Deferred` or future a handler returned, or a streamed reply still
being written), later pipelined requests wait in the reader's queue, and reading pauses once one
is waiting there (reading goes on while the connection is quiet, so a peer that hangs up is seen
at once, and the common request-reply rhythm costs no pause and resume).  A deferred reply is
given by some other event (the runtime's response, an invocation arriving) and written at once,
on the giver's stack; the next pipelined request is then served from the loop, never on that
stack.  A future's reply is written from its done-callback; neither creates a task.

Deadlines (a request head still incomplete :data:`HEAD_TIMEOUT` after its first byte, however
slowly its bytes trickle in; a keep-alive connection idle for :data:`IDLE_TIMEOUT`) are checked
by one sweep per server every :data:`SWEEP_INTERVAL` against each connection's last activity,
rather than by a timer per message: arming and cancelling a timer on every request cost more
than the rest of the connection's bookkeeping.  A listener holds at most
:data:`MAX_CONNECTIONS`; one over it is closed as soon as it is accepted.  A ``HEAD`` request's
answer is its head alone (RFC 9110 §9.3.2), whatever the handler put in the body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import cast

from lambdakit.emulator.http.codec import (
    CONTINUE,
    LAST_CHUNK,
    ProtocolError,
    RequestReader,
    StreamPredicate,
    encode_chunk,
    encode_head,
    encode_response,
)
from lambdakit.emulator.http.messages import Deferred, Handler, Request, Response, Streamed

logger = logging.getLogger("lambdakit.http")

#: A request whose head is not complete this long after it began is dropped (slow clients).
HEAD_TIMEOUT = 30.0
#: A keep-alive connection with no request in progress is closed after this long.
IDLE_TIMEOUT = 300.0
#: How often each server looks for connections past those deadlines.
SWEEP_INTERVAL = 1.0
#: Open connections per listener; more are closed at once (a runaway or hostile client would
#: otherwise take every file descriptor of the process, which the environments need too).
MAX_CONNECTIONS = 1000
#: A refusal over :data:`MAX_CONNECTIONS` is logged at most this often (seconds).
_REFUSAL_LOG_INTERVAL = 10.0
#: Asked once per accepted connection, before anything is read: False closes it at once.
Admit = Callable[[asyncio.Transport], bool]
_SERVER_ERROR = Response(500, (("Content-Type", "text/plain"),), b"internal error\n", close=True)


def _error(status: int, message: str) -> Response:
    return Response(status, (("Content-Type", "text/plain"),), message.encode() + b"\n", close=True)


class _ChunkedWriter:
    """The :class:`ResponseWriter` of one streamed reply on one connection."""

    __slots__ = ("_done", "_protocol", "_started", "pause", "resume")

    def __init__(self, protocol: HttpProtocol) -> None:
        self._protocol = protocol
        self._started = False
        self._done = False
        self.pause: Callable[[], None] | None = None
        self.resume: Callable[[], None] | None = None

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pause, self.resume = pause, resume
        if self._protocol.write_paused:
            pause()

    @property
    def closed(self) -> bool:
        return self._done or self._protocol.transport is None

    def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        if self._started or self.closed:
            return
        self._started = True
        protocol = self._protocol
        if protocol.http10:  # no chunked encoding in HTTP/1.0: the end is the connection's
            protocol.keep_alive = False
        if protocol.head_only:  # a HEAD's answer is its head: no chunks, then close
            protocol.keep_alive = False
            protocol.send(encode_head(status, tuple(headers), False, False))
            return
        head = encode_head(status, tuple(headers), protocol.keep_alive, not protocol.http10)
        protocol.send(head)

    def write(self, data: bytes) -> None:
        if data and self._started and not self.closed and not self._protocol.head_only:
            self._protocol.send(data if self._protocol.http10 else encode_chunk(data))

    def finish(self) -> None:
        if self._done:
            return
        if not self._started:
            self.start(200, ())
        if not self.closed and not self._protocol.http10 and not self._protocol.head_only:
            self._protocol.send(LAST_CHUNK)
        self._done = True
        if self.resume is not None:
            self.resume()  # nothing more to hold back
        self.pause = self.resume = None
        protocol = self._protocol
        if protocol._reader.requests:  # a pipelined request is served from the loop, never on
            protocol._loop.call_soon(protocol.reply_done, not protocol.keep_alive)  # our stack
        else:
            protocol.reply_done(close=not protocol.keep_alive)


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection to one of our servers."""

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        connections: set[HttpProtocol],
        streams: StreamPredicate | None = None,
        admit: Admit | None = None,
    ) -> None:
        # Shared state
        self._handler = handler
        self._admit = admit
        self._connections = connections
        self._loop = asyncio.get_running_loop()
        # Per-connection state
        self._reader = RequestReader(max_body, streams)
        self.transport: asyncio.Transport | None = None
        self._busy = False
        self._pending: asyncio.Future[Response] | None = None
        self._deferred: Deferred | None = None
        self._writer: _ChunkedWriter | None = None
        self.keep_alive = True
        self.http10 = False
        #: The request being answered is a HEAD: its reply goes out without a body.
        self.head_only = False
        self.write_paused = False
        self._reading_paused = False
        self._closing = False
        #: When the peer last sent bytes or a reply ended (loop time), for the deadlines.
        self.active_at = self._loop.time()

    # asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        if self._admit is not None and not self._admit(self.transport):
            self._close()
            return
        if len(self._connections) >= MAX_CONNECTIONS:
            _log_refusal()
            self._close()
            return
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self.transport = None
        self._reader.abort()  # a body still streaming in ends here, truncated
        if self._pending is not None and not self._pending.done():
            # The peer is gone: whoever holds the future learns it through cancellation.
            self._pending.cancel()
        self._pending = None
        if self._deferred is not None:
            self._deferred.drop()  # whoever holds it sees it is no longer pending
            self._deferred = None

    def data_received(self, data: bytes) -> None:
        in_head = self._reader.in_head
        try:
            self._reader.feed(data)
        except ProtocolError as exc:
            logger.debug("closing connection after a bad request: %s", exc)
            self._reader.abort()
            if not self._busy:  # never write into the middle of another reply
                self._write(_error(exc.status, str(exc)))
            self._close()
            return
        if not (in_head and self._reader.in_head):  # a head's deadline runs from its first byte
            self.active_at = self._loop.time()
        if self._reader.expects_continue:
            self._reader.expects_continue = False
            self.send(CONTINUE)
        self._serve_next()
        if self._busy and self._reader.requests and not self._reading_paused:
            self._pause_reading()  # pipelined requests wait; don't let more pile up

    # timeouts and flow control ------------------------------------------------------------------
    def past_deadline(self, now: float) -> bool:
        """A request head in progress for too long, or an idle keep-alive connection."""
        if self._busy or self.transport is None:
            return False  # a reply in progress (a long-polled next may take any time)
        limit = HEAD_TIMEOUT if self._reader.in_head else IDLE_TIMEOUT
        return now - self.active_at > limit

    def time_out(self) -> None:
        logger.debug("closing a connection that sent nothing for too long")
        self._close()

    def _pause_reading(self) -> None:
        if self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._writer is not None and self._writer.pause is not None:
            self._writer.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._writer is not None and self._writer.resume is not None:
            self._writer.resume()

    def pause_producing(self) -> None:
        self._pause_reading()

    def resume_producing(self) -> None:
        if self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # request dispatch -----------------------------------------------------------------------
    def _serve_next(self) -> None:
        requests = self._reader.requests
        while requests and not self._busy and self.transport is not None:
            request = requests.popleft()
            self.keep_alive = request.keep_alive
            self.http10 = request.http10
            self.head_only = request.method == "HEAD"
            if request.stream is not None:
                request.stream.producer = self
            reply = self._call(request)
            if isinstance(reply, Response):
                self._write(reply)
                continue
            self._busy = True
            if requests and (request.stream is None or request.stream.finished):
                self._pause_reading()
            if isinstance(reply, Deferred):
                self._deferred = reply
                reply.attach(self._give, self._abandon)
            elif isinstance(reply, Streamed):
                self._writer = _ChunkedWriter(self)
                reply.attach(self._writer)
            else:
                self._pending = reply
                reply.add_done_callback(self._on_reply)

    def _call(self, request: Request) -> Response | Deferred | asyncio.Future[Response] | Streamed:
        try:
            return self._handler(request)
        except Exception:
            logger.exception("handler failed for %s %s", request.method, request.path)
            return _SERVER_ERROR

    def _on_reply(self, future: asyncio.Future[Response]) -> None:
        if future is not self._pending:
            return
        self._pending = None
        if future.cancelled():
            self._busy = False
            self._close()
            return
        exc = future.exception()
        if exc is not None:
            logger.error("reply failed", exc_info=exc)
            response = _SERVER_ERROR
        else:
            response = future.result()
        if self.transport is not None:
            self.transport.write(self._encode(response))
        self.reply_done(close=response.close or not self.keep_alive)

    def _give(self, response: Response) -> None:
        """A :class:`Deferred` reply was given: write it now, on the giver's stack.

        Only the bookkeeping that cannot reach a handler runs here; serving the next pipelined
        request (which would call a handler back on the giver's stack) waits for the loop.
        """
        self._deferred = None
        transport = self.transport
        if transport is None:
            return
        transport.write(self._encode(response))
        close = response.close or not self.keep_alive
        if close or self._reader.requests:
            self._loop.call_soon(self.reply_done, close)
            return
        self._busy = False
        self.active_at = self._loop.time()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _abandon(self) -> None:
        """The giver of a :class:`Deferred` withdrew: close without an answer."""
        self._deferred = None
        self._busy = False
        self._close()

    def reply_done(self, close: bool) -> None:
        """The pending reply is complete: close, or go on with the next request."""
        self._busy = False
        self._writer = None
        self.active_at = self._loop.time()
        if close:
            self._close()
        elif self.transport is not None:
            if self._reading_paused:
                self._reading_paused = False
                self.transport.resume_reading()
            self._serve_next()
            if self._busy and self._reader.requests and not self._reading_paused:
                self._pause_reading()

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _write(self, response: Response) -> None:
        """Write a complete response, then close if it or the request asked to."""
        transport = self.transport
        if transport is None:
            return
        transport.write(self._encode(response))
        if response.close or not self.keep_alive:
            self._close()

    def _encode(self, response: Response) -> bytes:
        data = encode_response(response, self.keep_alive)
        if self.head_only and response.body:
            return data[: len(data) - len(response.body)]  # the Content-Length stays
        return data

    def _close(self) -> None:
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle, otherwise after the reply in progress."""
        if not self._busy:
            self._close()
        else:
            self.keep_alive = False


class HttpServer:
    """A listening socket, its connections, and an ordered close."""

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        streams: StreamPredicate | None = None,
        admit: Admit | None = None,
    ) -> None:
        self._handler = handler
        self._admit = admit
        self._max_body = max_body
        self._streams = streams
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[HttpProtocol] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0 picks a free one); return the bound address."""
        loop = asyncio.get_running_loop()
        factory: Callable[[], HttpProtocol] = lambda: HttpProtocol(  # noqa: E731
            self._handler, self._max_body, self.connections, self._streams, self._admit
        )
        self._server = await loop.create_server(factory, host, port, reuse_address=True)
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def _sweep(self) -> None:
        """Close connections past their deadline; go on while listening or connected."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c in self.connections if c.past_deadline(now)]:
            connection.time_out()
        listening = self._server is not None and self._server.is_serving()
        if listening or self.connections:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        else:
            self._sweeper = None

    def stop_accepting(self) -> None:
        """Close the listening socket; established connections stay open."""
        if self._server is not None:
            self._server.close()

    def close_connections(self) -> None:
        """Ask every connection to close after its reply in progress."""
        for connection in list(self.connections):
            connection.shutdown()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()


_last_refusal = 0.0


def _log_refusal() -> None:
    global _last_refusal
    now = time.monotonic()
    if now - _last_refusal > _REFUSAL_LOG_INTERVAL:
        logger.warning(
            "refusing connections: %d already open on one listener (a client that never "
            "closes its connections?)",
            MAX_CONNECTIONS,
        )
    _last_refusal = now
