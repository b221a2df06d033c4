"""Keep-alive connections to the real Runtime API.

A runtime makes its calls one after another; curl-based runtimes open a connection per call.
The pool keeps finished connections open and hands them out again, so a proxied call normally
costs one write and one read on an established socket (TCP_NODELAY, no handshake).  A ``GET
next`` holds its connection for as long as upstream holds the event; other calls meanwhile take
another connection.

An idle connection the server closed is dropped as soon as we notice; if a call was written to
one just before that (no reply byte seen), :class:`UpstreamError` says it is ``retryable`` and
the caller sends it again on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import cast

from lambdakit.proxy.calls import Reply
from lambdakit.proxy.http1 import EndOfMessage, Parser, ProtocolError, ResponseHead
from lambdakit.wire import headers as h

logger = logging.getLogger("lambdakit.proxy.upstream")

#: Idle connections kept per pool (a runtime rarely has more than two calls in flight).
MAX_IDLE = 4

OnReply = Callable[["Reply | UpstreamError"], None]


class UpstreamError(ConnectionError):
    """The call got no (complete) reply from upstream."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class UpstreamConnection(asyncio.Protocol):
    """One connection to the Runtime API, carrying one call at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._parser = Parser(server=False)
        self._transport: asyncio.Transport | None = None
        self._on_reply: OnReply | None = None
        self._head: ResponseHead | None = None
        self._body: list[bytes] = []
        self._reused = False
        self._seen_bytes = False
        self._close_after = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        set_nodelay(transport)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._seen_bytes = True
        try:
            events = self._parser.feed(data)
        except ProtocolError as exc:
            self._fail(UpstreamError(f"malformed reply from the Runtime API: {exc}"))
            return
        for event in events:
            if isinstance(event, bytes):
                self._body.append(event)
            elif isinstance(event, ResponseHead):
                self._head = event
            elif isinstance(event, EndOfMessage):
                self._complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._pool.discard(self)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._on_reply is None:
            return
        try:
            events = self._parser.close()
        except ProtocolError:
            events = []
        if events and self._head is not None:
            self._complete()
            return
        retryable = self._reused and not self._seen_bytes
        self._fail(UpstreamError("the Runtime API closed the connection", retryable))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # calls ------------------------------------------------------------------------------------
    def request(self, data: bytes, on_reply: OnReply, *, head_only: bool, close: bool) -> None:
        """Write a request (all of it, or its head when a body stream follows via :meth:`write`)."""
        transport = self._transport
        if transport is None:
            on_reply(UpstreamError("the Runtime API connection is closed", retryable=True))
            return
        self._on_reply = on_reply
        self._seen_bytes = False
        self._close_after = close
        if head_only:
            self._parser.expect_head_only()
        transport.write(data)

    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark."""
        if self._write_paused and self._transport is not None:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def abort(self) -> None:
        """Drop the connection (the runtime went away mid-call: upstream must notice)."""
        self._on_reply = None
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _complete(self) -> None:
        head, self._head = self._head, None
        body_parts, self._body = self._body, []
        on_reply, self._on_reply = self._on_reply, None
        assert head is not None
        body = body_parts[0] if len(body_parts) == 1 else b"".join(body_parts)
        fields = head.headers
        length: str | None = None
        chunked = False
        closing = self._close_after
        for name, value in fields:
            if name == h.CONTENT_LENGTH:
                length = value
            elif name == h.TRANSFER_ENCODING:
                chunked = True
            elif name == h.CONNECTION and value.lower() == "close":
                closing = True
        bodiless = head.status in (204, 304)
        # Re-encoded (raw empty) unless the bytes we got are a Content-Length message.
        raw = head.raw + body if not chunked and (length is not None or bodiless) else b""
        reply = Reply(head.status, head.reason, fields, body, raw)
        if closing or not (chunked or length is not None or bodiless):
            self.close()  # a reply read until close, or one that asked to close
        else:
            self._reused = True
            self._pool.release(self)
        if on_reply is not None:
            on_reply(reply)

    def _fail(self, error: UpstreamError) -> None:
        on_reply, self._on_reply = self._on_reply, None
        if self._transport is not None:
            self._transport.abort()
        if on_reply is not None:
            on_reply(error)


class UpstreamPool:
    """Connections to one Runtime API address."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection] = set()

    def take_idle(self) -> UpstreamConnection | None:
        return self._idle.pop() if self._idle else None

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port
            )
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to the Runtime API at {self.host}:{self.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._all.add(protocol)
        return protocol

    def release(self, connection: UpstreamConnection) -> None:
        if len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
        else:
            connection.close()

    def discard(self, connection: UpstreamConnection) -> None:
        self._all.discard(connection)
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    def close(self) -> None:
        for connection in list(self._all):
            connection.abort()
        self._idle.clear()
