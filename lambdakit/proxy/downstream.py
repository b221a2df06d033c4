"""The runtime's side of the proxy: one protocol instance per runtime connection.

Bytes from the runtime go through the :class:`~lambdakit.proxy.http1.Parser`; each complete
head becomes a :class:`~lambdakit.proxy.calls.Call`.  A buffered body is collected first (the
Runtime API caps it at 6 MB); a chunked one (a streamed response) is handed on as a
:class:`~lambdakit.proxy.calls.BodyStream` at once, so its chunks reach upstream as they arrive.
A call whose kind has no hook is written upstream straight from this callback on a pooled
connection, and upstream's reply is written back from that connection's callback: no task, no
re-encoding.  Hooked calls (and the rare fresh connection) run in one task per call.  The
connection's states are :mod:`lambdakit.proxy.lifecycle`'s table.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from lambdakit.proxy.calls import BodyStream, Call, CallKind, Reply, classify
from lambdakit.proxy.hooks import Hook
from lambdakit.proxy.http1 import (
    EndOfMessage,
    Event,
    Parser,
    ProtocolError,
    RequestHead,
    encode_response_head,
    header,
    without_framing,
)
from lambdakit.proxy.lifecycle import ConnEvent, ConnState, advance
from lambdakit.proxy.upstream import UpstreamConnection, UpstreamError, set_nodelay
from lambdakit.wire import errors
from lambdakit.wire import headers as h

if TYPE_CHECKING:
    from lambdakit.proxy.server import RuntimeApiProxy

logger = logging.getLogger("lambdakit.proxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: Calls that are safe to drop when the runtime hangs up: upstream must see the hang-up.
_ABANDON_ON_HANGUP = (CallKind.NEXT, CallKind.OTHER)


def bad_gateway(detail: str) -> Reply:
    return Reply.json(502, {"errorMessage": detail, "errorType": errors.RUNTIME_UNKNOWN})


def encode_reply(reply: Reply) -> bytes:
    fields = without_framing(reply.headers)
    fields.append((h.CONTENT_LENGTH, str(len(reply.body))))
    return encode_response_head(reply.status, reply.reason, fields) + reply.body


class Exchange:
    """One call in flight: what the proxy must remember to forward it and answer it."""

    __slots__ = ("call", "reply", "upstream")

    def __init__(self, call: Call) -> None:
        #: The call as received (its raw bytes are valid only for this very object).
        self.call = call
        #: The reply as upstream sent it (ditto).
        self.reply: Reply | None = None
        #: The upstream connection carrying the call right now.
        self.upstream: UpstreamConnection | None = None


class RuntimeConnection(asyncio.Protocol):
    """One connection from the runtime."""

    def __init__(self, proxy: RuntimeApiProxy) -> None:
        self._proxy = proxy
        self._parser = Parser(server=True)
        self._transport: asyncio.Transport | None = None
        self._state = ConnState.IDLE
        self._backlog: deque[Event] = deque()
        # Per-call state
        self._head: RequestHead | None = None
        self._kind = CallKind.OTHER
        self._request_id = ""
        self._parts: list[bytes] = []
        self._stream: BodyStream | None = None
        self._exchange: Exchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._close_after = False

    # asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)
        self._proxy.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except ProtocolError as exc:
            logger.warning("closing a runtime connection after a malformed request: %s", exc)
            if self._transport is not None:
                self._transport.write(_BAD_REQUEST)
            self.abort()
            return
        if self._backlog:
            self._backlog.extend(events)
        else:
            self._process(deque(events))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._proxy.connections.discard(self)
        self._state = advance(self._state, ConnEvent.CLOSE)
        if self._stream is not None:
            self._stream.abort(ConnectionResetError("the runtime closed the connection"))
        if self._kind in _ABANDON_ON_HANGUP:
            if self._task is not None:
                self._task.cancel()
            elif self._exchange is not None and self._exchange.upstream is not None:
                self._exchange.upstream.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # requests ---------------------------------------------------------------------------------
    def _process(self, events: deque[Event]) -> None:
        while events:
            event = events[0]
            if isinstance(event, RequestHead) and self._state is not ConnState.IDLE:
                # Pipelined: wait for the reply in progress (runtimes do not pipeline anyway).
                self._backlog = events
                if self._transport is not None:
                    self._transport.pause_reading()
                return
            events.popleft()
            if isinstance(event, bytes):
                if self._stream is not None:
                    self._stream.feed(event)
                else:
                    self._parts.append(event)
            elif isinstance(event, RequestHead):
                self._begin(event)
            elif isinstance(event, EndOfMessage):
                self._end(event)

    def _begin(self, head: RequestHead) -> None:
        self._state = advance(self._state, ConnEvent.HEAD)
        self._head = head
        self._kind, self._request_id = classify(head.method, head.target)
        self._parts = []
        connection = header(head.headers, h.CONNECTION)
        self._close_after = connection is not None and connection.lower() == "close"
        expect = header(head.headers, h.EXPECT)
        if expect is not None and expect.lower() == "100-continue" and self._transport:
            self._transport.write(_CONTINUE)
        encoding = header(head.headers, h.TRANSFER_ENCODING)
        if encoding is not None and "chunked" in encoding.lower():
            self._stream = BodyStream(self._pause, self._resume)
            self._dispatch(self._call(self._stream))

    def _end(self, end: EndOfMessage) -> None:
        self._state = advance(self._state, ConnEvent.BODY_END)
        if self._stream is not None:
            self._stream.finish(end.trailers)
            self._stream = None
            return
        parts, self._parts = self._parts, []
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._dispatch(self._call(body))

    def _call(self, body: bytes | BodyStream) -> Call:
        head = self._head
        assert head is not None
        return Call(
            self._kind, head.method, head.target, head.headers, body, self._request_id, head.raw
        )

    def _pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def _resume(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # forwarding -------------------------------------------------------------------------------
    def _dispatch(self, call: Call) -> None:
        exchange = self._exchange = Exchange(call)
        hook = self._proxy.hooks_by_kind.get(call.kind)
        if hook is None and isinstance(call.body, bytes):
            upstream = self._proxy.pool.take_idle()
            if upstream is not None:
                exchange.upstream = upstream
                upstream.request(
                    self._proxy.encode(call, exchange),
                    self._on_fast_reply,
                    head_only=call.method == "HEAD",
                    close=self._close_after,
                )
                return
        self._task = asyncio.get_running_loop().create_task(self._run(hook, exchange))

    def _on_fast_reply(self, result: Reply | UpstreamError) -> None:
        exchange = self._exchange
        if exchange is None or self._state is ConnState.CLOSED:
            return
        exchange.upstream = None
        if isinstance(result, Reply):
            exchange.reply = result
            self._write_reply(result)
        elif result.retryable:
            self._task = asyncio.get_running_loop().create_task(self._run(None, exchange))
        else:
            logger.error("%s %s: %s", exchange.call.method, exchange.call.target, result)
            self._write_reply(bad_gateway(str(result)))

    async def _run(self, hook: Hook | None, exchange: Exchange) -> None:
        call = exchange.call

        def forward(forwarded: Call) -> Awaitable[Reply]:
            return self._proxy.forward(forwarded, exchange)

        try:
            reply = await (hook(call, forward) if hook is not None else forward(call))
        except UpstreamError as exc:
            logger.error("%s %s: %s", call.method, call.target, exc)
            reply = bad_gateway(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("the %s hook failed", call.kind.value)
            reply = bad_gateway(f"proxy hook failed: {exc!r}")
        finally:
            self._task = None
        self._write_reply(reply)

    def _write_reply(self, reply: Reply) -> None:
        exchange, self._exchange = self._exchange, None
        transport = self._transport
        self._state = advance(self._state, ConnEvent.REPLIED)
        if transport is None or self._state is ConnState.CLOSED:
            if transport is not None:
                transport.close()
            return
        pristine = exchange is not None and reply is exchange.reply and reply.raw
        transport.write(reply.raw if pristine else encode_reply(reply))
        connection = reply.header(h.CONNECTION)
        if self._close_after or (connection is not None and connection.lower() == "close"):
            self._state = advance(self._state, ConnEvent.CLOSE)
            transport.close()
            return
        self._kind = CallKind.OTHER
        if self._backlog:
            backlog, self._backlog = self._backlog, deque()
            transport.resume_reading()
            self._process(backlog)
