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
import select
import socket
import time
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
from lambdakit.proxy.upstream import UpstreamConnection, UpstreamError
from lambdakit.wire import errors, limits
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


#: A buffered response up to this size is accepted at once (see :meth:`RuntimeConnection.forward`):
#: the 6 MB Lambda allows, without the margin AWS's RIE adds.
EARLY_ACCEPT_LIMIT = 6 * 1024 * 1024
assert EARLY_ACCEPT_LIMIT <= limits.MAX_SYNC_PAYLOAD
#: What the Runtime API answers a valid ``/response`` (the same bytes serve sends).
_ACCEPTED_BODY = b'{"status":"OK"}'
ACCEPTED = Reply(
    202,
    "Accepted",
    ((h.CONTENT_TYPE, h.JSON_CONTENT_TYPE),),
    _ACCEPTED_BODY,
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
    % (len(_ACCEPTED_BODY), _ACCEPTED_BODY),
)


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
        #: A response accepted at once: its upstream connection, the byte count before it was
        #: sent, and the call (to send again if that connection turns out stale).
        self._owed: tuple[UpstreamConnection, int, Call] | None = None

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
            if self._owed is not None:
                self._settle_owed()
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
        if self._owed is not None and not self._next_request_first():
            self._settle_owed()
        return (
            self._state is ConnState.IDLE
            and not self._close_requested
            and not _asks_to_close(reply.header(h.CONNECTION))
        )

    def _read_body(self) -> bytes:
        body = self._reader.body()
        self._state = advance(self._state, ConnEvent.BODY_END)
        return body

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
        """Send ``call`` upstream and return the reply: the ``forward`` every hook is given.

        A buffered ``/response`` for an invocation this proxy delivered, within its deadline
        and under 6 MB, is one the Runtime API accepts with 202
        (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-response).
        Such a response is sent and answered at once, and upstream's own reply is read once
        the runtime has its 202 (:meth:`_settle_owed`): the runtime's next ``GET next`` is on
        its way while upstream is still answering, instead of after, which saves the
        invocation that follows a round trip through this proxy.
        """
        as_received = call is self._call
        kind = call.kind
        if self._owed is not None:
            if as_received and type(call.body) is bytes and call.method != "HEAD":
                return self._forward_pipelined(call)
            self._settle_owed()
        if self._proxy.owed_replies:  # calls after a response reach upstream after it
            self._proxy.wait_for_owed_replies()
        if kind is CallKind.RESPONSE or kind is CallKind.ERROR:
            deadline = self._proxy.delivered.pop(call.request_id, None)
            if (
                deadline is not None
                and kind is CallKind.RESPONSE
                and as_received
                and type(call.body) is bytes
                and len(call.body) <= EARLY_ACCEPT_LIMIT
                and not self._close_requested
                and (not deadline or time.time() * 1000 < deadline)
            ):
                upstream = self._proxy.pool.acquire(check_alive=True)
                self._proxy.owe_reply()
                self._owed = (upstream, upstream.send(encode_call(call, True)), call)
                self._reply = ACCEPTED
                return ACCEPTED
        reply = self._forward_now(call, as_received)
        if kind is CallKind.NEXT and reply.status == 200:
            self._proxy.remember_delivery(reply)
        return reply

    def _forward_now(self, call: Call, as_received: bool) -> Reply:
        """Send ``call`` upstream and wait for the reply (once more on a fresh connection if
        the kept one turns out stale)."""
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

    def _forward_pipelined(self, call: Call) -> Reply:
        """Send ``call`` right behind the response accepted at once, on its connection, then
        read both replies in order: upstream serves them in that order (RFC 9112 §9.3.2), and
        the runtime's ``next`` does not wait for the response's reply to come back first."""
        assert self._owed is not None
        upstream = self._owed[0]
        upstream.send(encode_call(call, True))
        if not self._settle_owed(release=False):
            return self._forward_now(call, True)  # that connection failed: the call with it
        watch = self._sock if call.kind in _WATCH_FOR_HANGUP else None
        try:
            reply = upstream.reply(upstream.received, self._close_requested, watch)
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            return self._forward_now(call, True)
        self._proxy.pool.release(upstream)
        self._reply = reply
        if call.kind is CallKind.NEXT and reply.status == 200:
            self._proxy.remember_delivery(reply)
        return reply

    def _next_request_first(self) -> bool:
        """After a response accepted at once: True if the runtime's next request arrives
        before upstream's reply (it then goes upstream pipelined), False once the reply did."""
        assert self._owed is not None
        if self._reader.buffered:
            return True
        poller = select.poll()
        upstream_fd = self._owed[0].fileno()
        poller.register(upstream_fd, select.POLLIN)
        poller.register(self._sock, select.POLLIN)
        return all(fd != upstream_fd for fd, _ in poller.poll())

    def _settle_owed(self, release: bool = True) -> bool:
        """Read upstream's reply to the response accepted at once; send it again on a fresh
        connection if the kept one was stale.  A refusal (which the checks in :meth:`forward`
        rule out but for a race with the deadline) is logged: the runtime already has its 202."""
        assert self._owed is not None
        upstream, received, call = self._owed
        self._owed = None
        settled = True
        try:
            try:
                reply = upstream.reply(received, close=False)
                if release:
                    self._proxy.pool.release(upstream)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                settled = False
                reply = self._forward_now(call, as_received=True)
        except (UpstreamError, OSError) as exc:
            logger.error(
                "the response for %s did not reach the Runtime API: %s",
                call.request_id,
                exc,
            )
            return False
        finally:
            self._proxy.owed_reply_read()
        if not 200 <= reply.status < 300:
            logger.error(
                "the Runtime API refused the response for %s after the proxy accepted it: %d %s",
                call.request_id,
                reply.status,
                reply.body[:200].decode("utf-8", "replace"),
            )
        return settled
