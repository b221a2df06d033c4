"""The runtime's side of the proxy: one connection, served start to end on one thread.

Requests are read through an :class:`~lambdakit.proxy.sockets.EventReader`; each head becomes a
:class:`~lambdakit.proxy.calls.Call`.  A buffered body is read whole first (the Runtime API caps
it at 6 MB); a chunked one (a streamed response) becomes a
:class:`~lambdakit.proxy.calls.ForwardedBody` that reads the runtime's chunks only as ``forward``
sends them upstream, so they pass through unbuffered.  The call goes through its hook, if one is
overridden, or straight upstream; the reply is written back; then the next request.  Whatever
nobody changed travels as the bytes that arrived.  The connection's states are
:mod:`lambdakit.proxy.lifecycle`'s table.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING

from lambdakit.proxy.calls import (
    Call,
    CallKind,
    ForwardedBody,
    Reply,
    classify,
    encode_call,
    encode_reply,
    encode_stream_head,
)
from lambdakit.proxy.lifecycle import ConnEvent, ConnState, advance
from lambdakit.proxy.sockets import EventReader, HungUp
from lambdakit.proxy.upstream import UpstreamError
from lambdakit.wire import errors
from lambdakit.wire import headers as h
from lambdakit.wire.http1 import (
    EndOfMessage,
    Parser,
    ProtocolError,
    RequestHead,
    closes_connection,
)

if TYPE_CHECKING:
    from lambdakit.proxy.server import RuntimeApiProxy

logger = logging.getLogger("lambdakit.proxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: Calls upstream may hold (long polls): if the runtime hangs up meanwhile, upstream is told by
#: closing the upstream connection, so that it does not hand an event to nobody.
_WATCH_FOR_HANGUP = (CallKind.NEXT, CallKind.OTHER)


def bad_gateway(detail: str) -> Reply:
    return Reply.json(502, {"errorMessage": detail, "errorType": errors.RUNTIME_UNKNOWN})


def _asks_to_close(value: str | None) -> bool:
    return value is not None and value.lower() == "close"


class RuntimeConnection:
    """One connection from the runtime; :meth:`serve` runs until it closes."""

    def __init__(self, proxy: RuntimeApiProxy, sock: socket.socket) -> None:
        self._proxy = proxy
        self._sock = sock
        self._reader = EventReader(sock, Parser(server=True))
        self._state = ConnState.IDLE
        #: The call as received, and the reply as upstream sent it: a hook that hands either
        #: back unchanged (the very object) has it forwarded as the bytes that arrived.
        self._call: Call | None = None
        self._reply: Reply | None = None
        #: The call as received asked to close the connection after its reply.
        self._close_requested = False

    def serve(self) -> None:
        try:
            while self._serve_call():
                pass
        except ProtocolError as exc:
            logger.warning("closing a runtime connection after a malformed request: %s", exc)
            self._send_quietly(_BAD_REQUEST)
        except OSError as exc:  # HungUp included: the runtime went away
            logger.debug("runtime connection closed: %s", exc)
        finally:
            self._state = advance(self._state, ConnEvent.CLOSE)
            self._sock.close()

    # one call ---------------------------------------------------------------------------------
    def _serve_call(self) -> bool:
        """Read a request, forward it, write the reply; False once the connection is done."""
        head = self._reader.next()
        if head is None:
            return False
        if not isinstance(head, RequestHead):
            raise ProtocolError("expected a request head")
        self._state = advance(self._state, ConnEvent.HEAD)
        method, target, fields, raw, version = head
        kind, request_id = classify(method, target)
        expect = ""
        chunked = False
        connection: str | None = None
        for name, value in fields:
            if name == h.TRANSFER_ENCODING:
                chunked = True  # the parser accepts no other transfer coding
            elif name == h.CONNECTION:
                connection = value if connection is None else f"{connection}, {value}"
            elif name == h.EXPECT:
                expect = value.lower()
        if expect == "100-continue":
            self._sock.sendall(_CONTINUE)
        body = ForwardedBody(self._pull_chunk) if chunked else self._read_body()
        call = Call(kind, method, target, fields, body, request_id, raw)
        self._close_requested = closes_connection(version, connection)
        reply = self._dispatch(call)
        # A reply before the runtime finished its body ends the connection: the rest of the
        # body cannot be skipped safely (RECEIVING + REPLIED -> CLOSED).
        self._state = advance(self._state, ConnEvent.REPLIED)
        self._sock.sendall(encode_reply(reply, reply is self._reply))
        self._call = self._reply = None
        return (
            self._state is ConnState.IDLE
            and not self._close_requested
            and not _asks_to_close(reply.header(h.CONNECTION))
        )

    def _read_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            event = self._reader.next()
            if isinstance(event, bytes):
                parts.append(event)
            elif isinstance(event, EndOfMessage):
                self._state = advance(self._state, ConnEvent.BODY_END)
                return parts[0] if len(parts) == 1 else b"".join(parts)
            else:
                raise ProtocolError("the runtime closed the connection in the middle of a body")

    def _pull_chunk(self) -> bytes | EndOfMessage:
        """The next piece of a streamed body (what a ForwardedBody pulls)."""
        try:
            event = self._reader.next()
        except (OSError, ProtocolError) as exc:
            raise HungUp(f"the runtime's streamed body broke off: {exc}") from exc
        if isinstance(event, EndOfMessage):
            self._state = advance(self._state, ConnEvent.BODY_END)
        elif not isinstance(event, bytes):
            raise HungUp("the runtime closed the connection in the middle of a streamed body")
        return event

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(data)

    # forwarding -------------------------------------------------------------------------------
    def _dispatch(self, call: Call) -> Reply:
        self._call = call
        hook = self._proxy.hooks_by_kind.get(call.kind)
        try:
            return hook(call, self.forward) if hook is not None else self.forward(call)
        except UpstreamError as exc:
            logger.error("%s %s: %s", call.method, call.target, exc)
            return bad_gateway(str(exc))
        except HungUp:
            raise
        except Exception as exc:
            logger.exception("the %s hook failed", call.kind.value)
            return bad_gateway(f"proxy hook failed: {exc!r}")

    def forward(self, call: Call) -> Reply:
        """Send ``call`` upstream and return the reply: the ``forward`` every hook is given."""
        as_received = call is self._call
        pool = self._proxy.pool
        watch = self._sock if call.kind in _WATCH_FOR_HANGUP else None
        close = self._close_requested if as_received else _asks_to_close(call.header(h.CONNECTION))
        head_only = call.method == "HEAD"
        for attempt in (1, 2):
            # A buffered body is retried if the kept connection turns out stale; a streamed one
            # cannot be replayed, so its connection is checked first.
            upstream = pool.acquire(check_alive=not isinstance(call.body, bytes))
            try:
                if isinstance(call.body, bytes):
                    data = encode_call(call, as_received)
                    reply = upstream.call(data, head_only=head_only, close=close, watch=watch)
                else:
                    data = encode_stream_head(call, as_received)
                    reply = upstream.call(data, call.body, close=close, watch=watch)
            except UpstreamError as exc:
                if not (exc.retryable and attempt == 1 and isinstance(call.body, bytes)):
                    raise
                logger.debug("retrying %s %s on a fresh connection", call.method, call.target)
                continue
            pool.release(upstream)
            self._reply = reply
            return reply
        raise AssertionError("unreachable")
