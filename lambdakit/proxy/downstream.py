"""The runtime's side of the proxy: one connection, served start to end on one thread.

Two lanes.  The **fast lane** (:mod:`lambdakit.proxy.relay`) carries the two calls every
invocation makes, a plain ``GET next`` and a buffered ``POST …/{id}/response``, when no hook
overrides them: their heads are scanned, not parsed, and their bytes go on as they came, with
no :class:`~lambdakit.proxy.calls.Call` or :class:`~lambdakit.proxy.calls.Reply` built.
Everything else takes the **codec lane**: requests are read through an
:class:`~lambdakit.proxy.sockets.EventReader`, each head becomes a ``Call``, a buffered body is
read whole first (the Runtime API caps it at 6 MB), a chunked one (a streamed response) becomes
a :class:`~lambdakit.proxy.calls.ForwardedBody` that reads the runtime's chunks only as
``forward`` sends them upstream, so they pass through unbuffered.  The call goes through its
hook, if one is overridden, or straight upstream; the reply is written back.  In both lanes,
whatever nobody changed travels as the bytes that arrived, the observers
(``Hooks.before_next``, ``Hooks.on_result``) are called, and a response the Runtime API is
bound to accept is answered at once (:meth:`RuntimeConnection.forward`).  The connection's
states are :mod:`lambdakit.proxy.lifecycle`'s table.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from typing import TYPE_CHECKING

from lambdakit.proxy.calls import (
    Body,
    Call,
    CallKind,
    ForwardedBody,
    RecordingStream,
    Relayed,
    Reply,
    Result,
    classify,
    encode_call,
    encode_reply,
    encode_stream_head,
    streamed_result,
)
from lambdakit.proxy.lifecycle import ConnEvent, ConnState, advance
from lambdakit.proxy.relay import scan_request
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


#: The steps of one call in the fast lane, which does not step the state (see ``_relay``).
_FAST_LANE = (ConnEvent.HEAD, ConnEvent.BODY_END, ConnEvent.REPLIED)


def _check_fast_lane() -> None:
    state = ConnState.IDLE
    for event in _FAST_LANE:
        state = advance(state, event)
    assert state is ConnState.IDLE, "the fast lane must end where it began"


_check_fast_lane()


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
        #: sent, the bytes sent (to send again if that connection turns out stale) and its
        #: request id.
        self._owed: tuple[UpstreamConnection, int, bytes, str] | None = None
        hooked = proxy.hooks_by_kind
        #: The ``next`` reply of the invocation whose result the codec lane is forwarding.
        self._result_delivery = b""
        #: Polls this connection and the upstream one a response is owed on (see
        #: ``_next_request_first``); kept, as a runtime's calls take one upstream connection.
        self._poller: select.poll | None = None
        self._polled = -1
        #: Which calls may take the fast lane (those no hook overrides).
        self._fast_next = CallKind.NEXT not in hooked
        self._fast_response = CallKind.RESPONSE not in hooked

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
                self._settle_owed(*self._owed)
            self._state = advance(self._state, ConnEvent.CLOSE)
            self._sock.close()

    # one call ---------------------------------------------------------------------------------
    def _serve_call(self) -> bool:
        """Read a request, forward it, write the reply; False once the connection is done."""
        if self._fast_next or self._fast_response:
            head = self._reader.take_head()
            if head is not None:
                if not head:
                    return False
                scan = scan_request(head)
                if (
                    scan is not None
                    and scan[2] <= EARLY_ACCEPT_LIMIT  # larger: the codec lane, as before
                    and (self._fast_next if scan[0] else self._fast_response)
                ):
                    return self._relay(head, *scan)
                self._reader.give_back(head)
        return self._serve_decoded()

    def _serve_decoded(self) -> bool:
        """The codec lane: one call read through the codec and handed to its hook."""
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
        recorder = None
        body: Body
        if chunked:
            body = ForwardedBody(self._pull_chunk)
            if kind is CallKind.RESPONSE and self._proxy.on_result is not None:
                # What on_result gets of a streamed response: the chunks as they go past.
                body = recorder = RecordingStream(body, self._proxy.hooks.result_limit)
        else:
            body = self._read_body()
        call = Call(kind, method, target, fields, body, request_id, raw)
        self._close_requested = closes_connection(version, connection)
        reply = self._dispatch(call)
        # A reply before the runtime finished its body ends the connection: the rest of the
        # body cannot be skipped safely (RECEIVING + REPLIED -> CLOSED).
        self._state = advance(self._state, ConnEvent.REPLIED)
        if (kind is CallKind.RESPONSE or kind is CallKind.ERROR) and 200 <= reply.status < 300:
            # Before the runtime has its answer (see _relay).
            delivery, self._result_delivery = self._result_delivery, b""
            if recorder is not None:
                self._observe(streamed_result(request_id, recorder, delivery))
            elif type(call.body) is bytes:
                self._observe(Result(kind, request_id, call.body, delivery))
        self._sock.sendall(encode_reply(reply, reply is self._reply))
        self._call = self._reply = None
        if self._owed is not None and not self._next_request_first():
            self._settle_owed(*self._owed)
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

    # the fast lane ------------------------------------------------------------------------------
    def _relay(self, head: bytes, is_next: bool, request_id: str, length: int) -> bool:
        """A scanned ``next`` or ``/response``: passed on as bytes, observers called.

        The connection goes IDLE -> RECEIVING -> WAITING -> IDLE here (:data:`_FAST_LANE`,
        checked against the table at import), so its state is not stepped call by call; any
        failure escapes to :meth:`serve`, which closes the connection from IDLE.
        """
        data = head + self._reader.take_body(length) if length else head
        keep = True
        if is_next:
            try:
                if self._proxy.before_next is not None:
                    self._proxy.before_next()
                raw, status, delivered, deadline, keep = self._relay_next(data)
            except UpstreamError as exc:
                raw, status, delivered = self._failed_upstream("GET next", exc), 502, ""
            except HungUp:
                raise
            except Exception as exc:
                logger.exception("the before_next hook failed")
                raw = encode_reply(bad_gateway(f"proxy hook failed: {exc!r}"), False)
                status, delivered = 502, ""
            if status == 200 and delivered:  # before the runtime can answer it elsewhere
                self._proxy.remember_delivery(delivered, deadline, raw)
            self._sock.sendall(raw)
            return keep
        found = self._proxy.delivered.pop(request_id, None)
        if self._owed is not None:  # two results in a row (no next between them)
            self._settle_owed(*self._owed)
        # No wait for other connections' owed replies: a result may pass another invocation's
        # (only a next must not pass a response: see _relay_next).
        if (
            found is not None
            and self._accepts_early(found[0], length)
            and self._send_owing(data, request_id)
        ):
            raw, status = ACCEPTED.raw, 202
        else:
            try:
                raw, status, _, _, keep = self._exchange(data, None)
            except UpstreamError as exc:
                raw, status = self._failed_upstream(f"the response for {request_id}", exc), 502
        if 200 <= status < 300 and self._proxy.observes_responses:
            # Before the runtime has its answer: a next it sends on another connection then
            # finds what on_result started (the post-runner's command) in before_next.
            delivery = found[1] if found is not None else b""
            self._observe(Result(CallKind.RESPONSE, request_id, data[len(head) :], delivery))
        self._sock.sendall(raw)
        if self._owed is not None and not self._next_request_first():
            self._settle_owed(*self._owed)
        return keep

    def _relay_next(self, data: bytes) -> tuple[bytes, int, str, int, bool]:
        if self._owed is not None:
            # The runtime asked before upstream answered its response: right behind it, on
            # its connection (upstream serves them in order, RFC 9112 §9.3.2).
            upstream = self._owed[0]
            upstream.send(data)
            if self._settle_owed(*self._owed, release=False):
                try:
                    relayed = upstream.take_reply(upstream.received, self._sock)
                except UpstreamError as exc:
                    if not exc.retryable:
                        raise
                else:
                    return self._release(upstream, relayed)
            return self._exchange(data, self._sock)  # that connection failed: send it anew
        if self._proxy.owed_replies:  # a response on another connection: it goes first
            self._proxy.wait_for_owed_replies()
        return self._exchange(data, self._sock)

    def _exchange(
        self, data: bytes, watch: socket.socket | None
    ) -> tuple[bytes, int, str, int, bool]:
        """Send a whole call upstream and take its reply (once more on a fresh connection if
        the kept one turns out stale)."""
        pool = self._proxy.pool
        for attempt in (1, 2):
            upstream = pool.acquire()
            try:
                relayed = upstream.exchange(data, watch)
            except UpstreamError as exc:
                if not (exc.retryable and attempt == 1):
                    raise
                logger.debug("retrying a call on a fresh connection")
                continue
            return self._release(upstream, relayed)
        raise AssertionError("unreachable")

    def _release(
        self, upstream: UpstreamConnection, relayed: Relayed
    ) -> tuple[bytes, int, str, int, bool]:
        self._proxy.pool.release(upstream)
        return (*relayed, upstream.reusable)

    def _failed_upstream(self, what: str, exc: UpstreamError) -> bytes:
        logger.error("%s: %s", what, exc)
        return encode_reply(bad_gateway(str(exc)), False)

    # forwarding -------------------------------------------------------------------------------
    def _dispatch(self, call: Call) -> Reply:
        self._call = call
        hook = self._proxy.hooks_by_kind.get(call.kind)
        try:
            if call.kind is CallKind.NEXT and self._proxy.before_next is not None:
                self._proxy.before_next()
            return hook(call, self.forward) if hook is not None else self.forward(call)
        except UpstreamError as exc:
            logger.error("%s %s: %s", call.method, call.target, exc)
            return bad_gateway(str(exc))
        except HungUp:
            raise
        except Exception as exc:
            logger.exception("the %s hook failed", call.kind.value)
            return bad_gateway(f"proxy hook failed: {exc!r}")

    def _observe(self, result: Result) -> None:
        """Give ``result`` to ``Hooks.on_result``; what it raises is logged."""
        observer = self._proxy.on_result
        if observer is None or result.kind not in self._proxy.hooks.results:
            return
        try:
            observer(result)
        except Exception:
            logger.exception("the on_result hook failed")

    def _accepts_early(self, deadline: int, length: int) -> bool:
        return length <= EARLY_ACCEPT_LIMIT and (not deadline or time.time() * 1000 < deadline)

    def _send_owing(self, data: bytes, request_id: str) -> bool:
        """Send a response to be answered at once, upstream's reply owed (kept on the
        connection at once: whatever happens next, :meth:`serve` settles it).  False when no
        upstream connection is to be had (the call then takes the usual way, to a 502)."""
        try:
            upstream = self._proxy.pool.acquire()
        except UpstreamError:
            return False
        # Stale, the connection would show it by reading no reply: _settle_owed resends.
        self._proxy.owe_reply()
        self._owed = (upstream, upstream.send(data), data, request_id)
        return True

    def forward(self, call: Call) -> Reply:
        """Send ``call`` upstream and return the reply: the ``forward`` every hook is given.

        A buffered ``/response`` for an invocation this proxy delivered, within its deadline
        and under 6 MB, is one the Runtime API accepts with 202
        (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-response).
        Such a response is sent and answered at once, and upstream's own reply is read after
        the runtime has its 202 (:meth:`_settle_owed`), or, when the runtime's next call comes
        first, once that call has been sent behind it on the same connection (pipelined): the
        runtime's ``GET next`` is on its way while upstream is still answering, which saves
        the invocation that follows a round trip through this proxy.  A ``next`` on another
        connection waits until that reply is read, so that it never overtakes the response;
        another invocation's result need not.
        """
        as_received = call is self._call
        kind = call.kind
        found = None
        if kind is CallKind.RESPONSE or kind is CallKind.ERROR:
            found = self._proxy.delivered.pop(call.request_id, None)
            if found is not None:
                self._result_delivery = found[1]
        if self._owed is not None:
            if as_received and type(call.body) is bytes and call.method != "HEAD":
                return self._forward_pipelined(call)
            self._settle_owed(*self._owed)
        if kind is CallKind.NEXT and self._proxy.owed_replies:  # never before a response
            self._proxy.wait_for_owed_replies()
        if (
            found is not None
            and kind is CallKind.RESPONSE
            and as_received
            and type(call.body) is bytes
            and not self._close_requested
            and self._accepts_early(found[0], len(call.body))
            and self._send_owing(encode_call(call, True), call.request_id)
        ):
            self._reply = ACCEPTED
            return ACCEPTED
        reply = self._forward_now(call, as_received)
        if kind is CallKind.NEXT:
            self._remember(reply)
        return reply

    def _remember(self, reply: Reply) -> None:
        request_id = reply.header(h.REQUEST_ID)
        if reply.status == 200 and request_id:
            deadline = reply.header(h.DEADLINE_MS) or ""
            self._proxy.remember_delivery(
                request_id,
                int(deadline) if deadline.isdigit() else 0,
                encode_reply(reply, reply is self._reply),
            )

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
        """The codec lane's pipelining (see :meth:`_relay_next`)."""
        assert self._owed is not None
        upstream = self._owed[0]
        upstream.send(encode_call(call, True))
        if not self._settle_owed(*self._owed, release=False):
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
        if call.kind is CallKind.NEXT:
            self._remember(reply)
        return reply

    # a response accepted at once ------------------------------------------------------------
    def _next_request_first(self) -> bool:
        """After a response accepted at once: True if the runtime's next request arrives
        before upstream's reply to it (it then goes upstream pipelined), False once the reply
        did.  A fast runtime asks for its next event before upstream has answered."""
        assert self._owed is not None
        if self._reader.buffered:
            return True
        upstream_fd = self._owed[0].fileno()
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self._sock, select.POLLIN)
        if upstream_fd != self._polled:
            if self._polled >= 0:
                poller.unregister(self._polled)
            poller.register(upstream_fd, select.POLLIN)
            self._polled = upstream_fd
        return all(fd != upstream_fd for fd, _ in poller.poll())

    def _settle_owed(
        self,
        upstream: UpstreamConnection,
        received: int,
        data: bytes,
        request_id: str,
        release: bool = True,
    ) -> bool:
        """Read upstream's reply to a response accepted at once (sent as ``data``); send it
        again on a fresh connection if the kept one was stale.  A refusal (which the checks in
        :meth:`forward` rule out but for a race with the deadline) is logged: the runtime
        already has its 202.  True if the reply came on the connection it was sent on."""
        self._owed = None
        settled = True
        try:
            try:
                raw, status, _, _ = upstream.take_reply(received)
                if release:
                    self._proxy.pool.release(upstream)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                settled = False
                raw, status, _, _, _ = self._exchange(data, None)
        except (UpstreamError, OSError) as exc:
            logger.error("the response for %s did not reach the Runtime API: %s", request_id, exc)
            return False
        finally:
            self._proxy.owed_reply_read()
        if not 200 <= status < 300:
            logger.error(
                "the Runtime API refused the response for %s after the proxy accepted it: %s",
                request_id,
                raw[:300].decode("latin-1"),
            )
        return settled
