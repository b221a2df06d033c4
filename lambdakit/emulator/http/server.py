"""The asyncio layer of the HTTP server: moves bytes between sockets and the codec.

One :class:`HttpProtocol` per connection.  Requests are answered strictly in order: while a
reply is pending (a future a handler returned), later pipelined requests wait in the reader's
queue and reading is paused.  A handler's future is resolved by some other event (the runtime's
response, an invocation arriving); the reply is then written from its done-callback, so the
common paths run without creating a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from lambdakit.emulator.http.codec import ProtocolError, RequestReader, encode_response
from lambdakit.emulator.http.messages import Handler, Request, Response

logger = logging.getLogger("lambdakit.http")

_BAD_REQUEST = Response(400, (("Content-Type", "text/plain"),), b"bad request\n", close=True)
_SERVER_ERROR = Response(500, (("Content-Type", "text/plain"),), b"internal error\n", close=True)


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection to one of our servers."""

    def __init__(self, handler: Handler, max_body: int, connections: set[HttpProtocol]) -> None:
        # Shared state
        self._handler = handler
        self._connections = connections
        # Per-connection state
        self._reader = RequestReader(max_body)
        self._transport: asyncio.Transport | None = None
        self._pending: asyncio.Future[Response] | None = None
        self._keep_alive = True
        self._closing = False

    # asyncio callbacks ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        if self._pending is not None and not self._pending.done():
            # The peer is gone: whoever holds the future learns it through cancellation.
            self._pending.cancel()
        self._pending = None

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
        except ProtocolError as exc:
            logger.debug("closing connection after a malformed request: %s", exc)
            self._write(_BAD_REQUEST)
            return
        self._serve_next()

    # request dispatch -----------------------------------------------------------------------
    def _serve_next(self) -> None:
        requests = self._reader.requests
        while requests and self._pending is None and self._transport is not None:
            request = requests.popleft()
            self._keep_alive = self._reader.keep_alive()
            reply = self._call(request)
            if isinstance(reply, Response):
                self._write(reply)
            else:
                self._pending = reply
                self._transport.pause_reading()
                reply.add_done_callback(self._on_reply)

    def _call(self, request: Request) -> Response | asyncio.Future[Response]:
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
            self._close()
            return
        exc = future.exception()
        if exc is not None:
            logger.error("reply failed", exc_info=exc)
            self._write(_SERVER_ERROR)
        else:
            self._write(future.result())
        if self._transport is not None:
            self._transport.resume_reading()
            self._serve_next()

    def _write(self, response: Response) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(encode_response(response, self._keep_alive))
        if response.close or not self._keep_alive:
            self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._closing:
            self._closing = True
            self._transport.close()

    def shutdown(self) -> None:
        """Close now if idle, otherwise after the reply in progress."""
        if self._pending is None:
            self._close()
        else:
            self._keep_alive = False


class HttpServer:
    """A listening socket, its connections, and an ordered close."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self._handler = handler
        self._max_body = max_body
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[HttpProtocol] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0 picks a free one); return the bound address."""
        loop = asyncio.get_running_loop()
        factory: Callable[[], HttpProtocol] = lambda: HttpProtocol(  # noqa: E731
            self._handler, self._max_body, self.connections
        )
        self._server = await loop.create_server(factory, host, port, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

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
