"""The proxy's I/O primitives: blocking sockets read one HTTP event at a time.

Every connection the proxy holds, the runtime's and upstream's, is a blocking socket owned by
one thread; nothing else reads it.  :class:`EventReader` turns what ``recv`` returns into the
:mod:`lambdakit.wire.http1` events, one at a time, keeping any extra a ``recv`` brought (a
pipelined request, the rest of a body) for the next call.  Other threads only ever
``shutdown()`` a socket (:func:`shut`), which wakes its owner; the owner closes it.
:func:`listen` makes the listener the runtime connects to.
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys

from lambdakit.wire.http1 import MAX_HEAD, EndOfMessage, Event, Parser, ProtocolError

#: Bytes asked of each ``recv`` (a Runtime API head is a few hundred bytes; bodies up to 6 MB).
RECV_SIZE = 64 * 1024


class HungUp(ConnectionError):
    """The runtime closed (or reset) its connection while a call was in progress."""


def set_nodelay(sock: socket.socket) -> None:
    """Send small writes at once (every proxied message is one write; Nagle would hold it)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


#: Accepted sockets inherit TCP_NODELAY from their listener (Linux: Lambda's OS).
_INHERITS_NODELAY = sys.platform.startswith("linux")
#: Seconds a connection may wait for its first bytes before accept() returns it anyway.
DEFER_ACCEPT_SECONDS = 1


def listen(host: str, port: int) -> socket.socket:
    """A loopback listener for the runtime's connections; OSError if the port is taken.

    Two options save the proxy a wake-up and a system call per connection, which matters for a
    runtime that opens one per call (curl forks for each, bench/results/postrun_latency.md):

    * ``TCP_DEFER_ACCEPT`` (Linux): ``accept()`` returns a connection once its first bytes have
      arrived, not at the handshake.  A Runtime API client always speaks first; curl sends
      about 0.1 ms after ``connect()`` returns, which was otherwise one wake-up in ``accept()``
      and one more in ``recv()``.  A connection that stays silent is handed over when its
      first bytes come (or after ``DEFER_ACCEPT_SECONDS``, once the kernel's retry of the
      handshake is answered).  Elsewhere, connections are accepted at the handshake as before.
    * ``TCP_NODELAY`` on the listener, which accepted sockets inherit on Linux (elsewhere, or
      if the listener refused it, each accepted socket needs it: :func:`passes_on_nodelay`).
    """
    listener = socket.create_server((host, port))
    set_nodelay(listener)
    if hasattr(socket, "TCP_DEFER_ACCEPT"):
        with contextlib.suppress(OSError):
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
    return listener


def passes_on_nodelay(listener: socket.socket) -> bool:
    """Sockets ``listener`` accepts have TCP_NODELAY on already (see :func:`listen`)."""
    try:
        return _INHERITS_NODELAY and bool(
            listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
    except OSError:
        return False


def shut(sock: socket.socket) -> None:
    """Wake the thread blocked on ``sock`` (from any thread); its owner then closes it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class EventReader:
    """The events of one direction of one connection, read from ``sock`` as they are asked for."""

    __slots__ = ("_events", "_index", "_parser", "_poller", "_raw", "_sock", "_watched", "received")

    def __init__(self, sock: socket.socket, parser: Parser) -> None:
        self._sock = sock
        self._parser = parser
        self._events: list[Event] = []
        self._index = 0
        #: Bytes received that neither the fast lane nor the parser has taken yet.
        self._raw = b""
        #: Bytes received so far (callers compare it to see whether a reply has begun).
        self.received = 0
        #: A poller for ``sock`` and the last socket watched with it (kept: a runtime's calls
        #: come on one connection and take this upstream one, call after call).
        self._poller: select.poll | None = None
        self._watched = -1

    def _wait_readable(self, watch: socket.socket) -> None:
        """Block until ``sock`` is readable; :class:`HungUp` if ``watch`` reaches EOF first."""
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self._sock, select.POLLIN)
        watched = watch.fileno()
        if watched != self._watched:
            if self._watched >= 0:
                poller.unregister(self._watched)
            poller.register(watched, select.POLLIN)
            self._watched = watched
        target = self._sock.fileno()
        while True:
            ready = poller.poll()
            if any(fd == target for fd, _ in ready):
                return
            if peer_closed(watch):
                raise HungUp("the runtime closed its connection")
            # It sent bytes (pipelining): no hang-up to watch for now.
            poller.unregister(watched)
            self._watched = -1

    @property
    def buffered(self) -> bool:
        """Events or bytes of the next message are already here (read with an earlier one)."""
        return bool(self._raw) or self._index < len(self._events) or not self._parser.idle

    # the fast lane (lambdakit.proxy.relay): whole heads and bodies as bytes ------------------
    def take_head(self, watch: socket.socket | None = None) -> bytes | None:
        """The next message's head, raw (up to its empty line), for a scan.

        b"" when the peer closed between messages.  None when the codec must read this message
        (it is mid-message, the head is too large, or bytes precede it): then use :meth:`next`.
        ``watch`` as in :meth:`next`.
        """
        if self._index < len(self._events) or not self._parser.idle:
            return None
        raw = self._raw
        while True:
            end = raw.find(b"\r\n\r\n", 0, MAX_HEAD)  # a longer head is the codec's to refuse
            if end >= 0:
                if raw.startswith(b"\r\n"):
                    break  # an empty line before a request line: the codec skips it
                end += 4
                self._raw = raw[end:]
                return raw[:end] if end < len(raw) else raw
            if len(raw) >= MAX_HEAD:
                break
            if watch is not None and not raw:
                self._wait_readable(watch)
            data = self._sock.recv(RECV_SIZE)
            if not data:
                if not raw:
                    return b""
                break
            self.received += len(data)
            raw = raw + data if raw else data
        self._raw = raw
        self.give_back(b"")
        return None

    def give_back(self, head: bytes) -> None:
        """Hand ``head`` (from :meth:`take_head`) and all bytes after it to the codec."""
        data, self._raw = head + self._raw, b""
        self._events = self._parser.feed(data) if data else []
        self._index = 0

    def take_body(self, length: int) -> bytes:
        """Exactly ``length`` bytes (a body after a scanned head); ProtocolError if the peer
        closes first."""
        raw = self._raw
        if len(raw) >= length:
            self._raw = raw[length:] if len(raw) > length else b""
            return raw[:length] if len(raw) > length else raw
        parts = [raw]
        have = len(raw)
        while have < length:
            data = self._sock.recv(RECV_SIZE)
            if not data:
                raise ProtocolError("connection closed in the middle of a message")
            self.received += len(data)
            parts.append(data)
            have += len(data)
        whole = b"".join(parts)
        self._raw = whole[length:]
        return whole[:length] if have > length else whole

    def expect_head_only(self) -> None:
        """The next response answers a ``HEAD`` request (see ``Parser.expect_head_only``)."""
        self._parser.expect_head_only()

    def next(self, watch: socket.socket | None = None) -> Event | None:
        """The next event; None when the peer closed between messages.

        Raises :class:`~lambdakit.wire.http1.ProtocolError` for malformed input or a message
        cut short, and OSError from the socket.  With ``watch`` (the runtime's socket, while
        upstream holds a long poll), :class:`HungUp` if ``watch`` closes before data arrives.
        """
        if self._raw and self._index >= len(self._events):
            self.give_back(b"")
        while self._index >= len(self._events):
            if watch is not None:
                self._wait_readable(watch)
            data = self._sock.recv(RECV_SIZE)
            self._index = 0
            if not data:
                self._events = self._parser.close()
                if not self._events:
                    return None
            else:
                self.received += len(data)
                self._events = self._parser.feed(data)
        event = self._events[self._index]
        self._index += 1
        return event

    def body(self) -> bytes:
        """The rest of the current message's body, whole (the events up to its end).

        The same as calling :meth:`next` until :class:`~lambdakit.wire.http1.EndOfMessage`,
        in one call: this is every proxied call's path.  ProtocolError if the peer closes first.
        """
        parts: list[bytes] = []
        while True:
            events, index = self._events, self._index
            while index < len(events):
                event = events[index]
                index += 1
                if type(event) is not bytes:
                    self._index = index
                    if type(event) is not EndOfMessage:
                        raise ProtocolError("a new message began before the body ended")
                    return parts[0] if len(parts) == 1 else b"".join(parts)
                parts.append(event)
            self._index = index
            data = self._sock.recv(RECV_SIZE)
            self._index = 0
            if not data:
                # The end of a body read until close; ProtocolError if it was cut short.
                self._events = self._parser.close()
                if not self._events:
                    raise ProtocolError("connection closed in the middle of a message")
            else:
                self.received += len(data)
                self._events = self._parser.feed(data)


def peer_closed(sock: socket.socket) -> bool:
    """True if the peer closed ``sock`` (or it failed); no data is consumed."""
    try:
        return not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
