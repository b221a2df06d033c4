"""A minimal keep-alive HTTP/1.1 client on a raw socket, for the Lambda APIs on loopback.

Theory of operation: the runtime talks to one server (``AWS_LAMBDA_RUNTIME_API``) over loopback,
one request at a time, and the first request must go out as soon as possible after the process
starts.  ``http.client`` costs more import time than the rest of the runtime together (it pulls
in ``email``, ``ssl`` and ``hashlib``), so this module speaks just enough HTTP/1.1 (RFC 9112) over
``_socket``.  lambdakit.extensions, whose import is on the Init path of a handler module under
awslambdaric, talks to the same server (the Extensions and Telemetry APIs) with the same
:class:`Connection`:

- requests carry ``Content-Length`` (bodies in memory), except a streamed response, whose body
  goes out as it is produced, in chunks (section 7.1), ending with optional trailer fields
  (section 7.1.2): see :class:`ChunkedUpload`;
- responses are read by :class:`lambdakit.wire.http1.Parser`, the codec the proxy and the
  extensions share, so the runtime accepts exactly what they accept: framed by
  ``Content-Length``, by ``Transfer-Encoding: chunked`` (section 7.1; trailers are read and
  dropped), or by the server closing the connection (section 6.3);
- the connection is kept open between requests; a request sent on a reused connection that the
  server has meanwhile closed is retried once on a fresh one (the idle keep-alive race), which is
  safe because no byte of a response was received.

There are no timeouts: ``GET next`` blocks until an event arrives, and Python's retry of
interrupted system calls (PEP 475) lets signal handlers such as SIGTERM run meanwhile.
"""

from __future__ import annotations

import _socket

from lambdakit.wire import headers as h
from lambdakit.wire.http1 import (
    MAX_HEAD,
    Parser,
    ProtocolError,
    ResponseHead,
    body_length,
    chunk_size_line,
    closes_connection,
    connection_option,
    encode_last_chunk,
    parse_response_head,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from lambdakit.wire.http1 import Framing, Headers

_RECV_SIZE = 64 * 1024
_CRLF = b"\r\n"


class RuntimeApiError(Exception):
    """The server could not be reached or answered with something we cannot read.

    The message names the API (``Connection``'s ``api``: the Runtime API unless told otherwise).
    """


class _StaleConnection(Exception):
    """The server closed a reused connection before answering: retry on a fresh one."""


class HttpResponse:
    """One response: status code, header fields (lower-cased names), the whole body."""

    __slots__ = ("_headers", "body", "fields", "status")

    def __init__(self, status: int, fields: Headers, body: bytes) -> None:
        self.status = status
        self.fields = fields
        self.body = body
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The fields as a dict (the last of a repeated name wins), made when first asked for."""
        if self._headers is None:
            self._headers = dict(self.fields)
        return self._headers

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, body={len(self.body)} bytes)"


def _split_address(address: str, api: str) -> tuple[int, str, int]:
    """``host:port`` (or ``[v6]:port``) -> (address family, host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RuntimeApiError(f"{api} address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        return _socket.AF_INET6, host[1:-1], int(port)
    return _socket.AF_INET, host, int(port)


class Connection:
    """A keep-alive HTTP/1.1 connection to one server; requests are sent one at a time.

    Not thread-safe: a thread blocked in a request (``GET next``) owns the connection until the
    response arrives.  ``user_agent`` None sends no ``User-Agent``; ``api`` names the server in
    error messages.
    """

    def __init__(self, address: str, user_agent: str | None, api: str = "Runtime API") -> None:
        self._family, self._host, self._port = _split_address(address, api)
        self._address = address
        self.api = api
        fixed = f"{h.HOST}: {address}\r\n"
        if user_agent is not None:
            fixed += f"{h.USER_AGENT}: {user_agent}\r\n"
        self._fixed_headers = fixed.encode("latin-1")
        self._get_heads: dict[str, bytes] = {}
        #: The last response head parsed, and what was read from it (the same head comes back).
        self._last_head: tuple[bytes, ResponseHead, Framing, int] | None = None
        self._sock: _socket.socket | None = None
        self._parser = Parser(server=False)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        """Send one request and read its whole response."""
        head = self._head(method, path, len(body), headers)
        reused = self._sock is not None
        try:
            try:
                return self._exchange(head, body)
            except _StaleConnection:
                if not reused:
                    raise
                self.close()
                return self._exchange(head, body)
        except RuntimeApiError:
            self.close()
            raise
        except (_StaleConnection, OSError) as exc:
            self.close()
            detail = "connection closed" if isinstance(exc, _StaleConnection) else str(exc)
            raise RuntimeApiError(
                f"{method} {path} to the {self.api} at {self._address} failed: {detail}"
            ) from exc

    def start_chunked(
        self, method: str, path: str, headers: Sequence[tuple[str, str]] = ()
    ) -> ChunkedUpload:
        """Send the head of a request with a chunked body; the caller sends the chunks.

        A chunked body cannot be replayed, so the idle keep-alive race is settled before the head
        goes out: a kept connection that the server has closed is replaced by a fresh one.
        """
        head = self._head(method, path, None, headers)
        self._drop_if_closed_by_peer()
        try:
            self._send(self._sock or self._connect(), [head])
        except OSError as exc:
            self.close()
            raise RuntimeApiError(
                f"{method} {path} to the {self.api} at {self._address} failed: {exc}"
            ) from exc
        return ChunkedUpload(self, f"{method} {path}")

    def _head(
        self, method: str, path: str, length: int | None, headers: Sequence[tuple[str, str]]
    ) -> bytes:
        """The request head; ``length`` None means a chunked body."""
        if not length and length is not None and not headers and method == "GET":
            head = self._get_heads.get(path)  # GET next, every invocation: made once
            if head is None:
                head = self._get_heads[path] = self._encode_head(method, path, length, headers)
            return head
        return self._encode_head(method, path, length, headers)

    def _encode_head(
        self, method: str, path: str, length: int | None, headers: Sequence[tuple[str, str]]
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        if length is None:
            lines.append(f"{h.TRANSFER_ENCODING}: chunked\r\n")
        elif length or method != "GET":
            lines.append(f"{h.CONTENT_LENGTH}: {length}\r\n")
        return "".join(lines).encode("latin-1") + self._fixed_headers + _CRLF

    def _drop_if_closed_by_peer(self) -> None:
        """Close the kept connection if the server has closed (or reset) its end."""
        if self._sock is None:
            return
        try:
            pending = self._sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return  # open, nothing to read: usable
        except OSError:
            pending = b""
        if not pending:
            self.close()

    @staticmethod
    def _send(sock: _socket.socket, parts: list[bytes]) -> None:
        """Send ``parts`` in one system call when possible (one TCP segment with NODELAY)."""
        total = sum(map(len, parts))
        sent = sock.sendmsg(parts)
        if sent < total:
            sock.sendall(b"".join(parts)[sent:])

    def _connect(self) -> _socket.socket:
        sock = _socket.socket(self._family, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect((self._host, self._port))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._parser = Parser(server=False)
        return sock

    def _exchange(self, head: bytes, body: bytes) -> HttpResponse:
        sock = self._sock or self._connect()
        try:
            self._send(sock, [head, body] if body else [head])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnection from exc
        return self._read_response()

    # --- reading -------------------------------------------------------------------------------
    #
    # Almost every response of the Lambda APIs is one small head and a Content-Length body that
    # arrive in one recv(): _read_response reads those itself, with the codec's head parser and
    # framing rules, which costs about half of a run through the Parser's event machinery.
    # Anything else (a head cut across reads, 1xx, chunked, read to EOF) goes to the Parser.

    def _recv(self, first: bool) -> bytes:
        """Bytes from the server; EOF is b"" (a stale connection if ``first``: nothing read yet)."""
        assert self._sock is not None
        try:
            data = self._sock.recv(_RECV_SIZE)
        except ConnectionResetError as exc:
            if first:
                raise _StaleConnection from exc
            raise
        if not data and first:
            raise _StaleConnection
        return data

    def _read_response(self) -> HttpResponse:
        """Read one response; close the connection after it if it says so, if it was read to
        EOF, or if the server sent more than it."""
        data = self._recv(first=True)
        end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end >= 0:  # (the parser is idle: a response it began ends or closes the connection)
            raw = data[: end + 4]
            last = self._last_head
            if last is not None and last[0] == raw:  # e.g. every 202 Accepted of the Runtime API
                head, framing, length = last[1], last[2], last[3]
            else:
                try:
                    head, framing = parse_response_head(raw)
                    length = body_length(framing) if head[0] >= 200 else -1
                except ProtocolError as exc:
                    detail = f"malformed response from the {self.api}: {exc}"
                    raise RuntimeApiError(detail) from None
                self._last_head = (raw, head, framing, length)
            status, _, fields, _, version = head
            if length >= 0 and status not in (204, 304):
                end += 4
                missing = length - (len(data) - end)
                parts = [data[end:] if missing >= 0 else data[end : end + length]]
                while missing > 0:
                    data = self._recv(first=False)
                    if not data:
                        raise RuntimeApiError(f"the {self.api} closed the connection mid-response")
                    parts.append(data[:missing] if len(data) > missing else data)
                    missing -= len(data)
                connection = connection_option(framing) if len(framing) > 1 else None
                if missing < 0 or closes_connection(version, connection):
                    self.close()  # missing < 0: more than the response (the server is confused)
                body = parts[0] if len(parts) == 1 else b"".join(parts)
                return HttpResponse(status, fields, body)
        return self._read_with_parser(data)

    def _read_with_parser(self, data: bytes) -> HttpResponse:
        """The general case, from the first bytes of the response on."""
        parser = self._parser
        head: ResponseHead | None = None
        parts: list[bytes] = []
        while True:
            try:
                events = parser.feed(data) if data else parser.close()
            except ProtocolError as exc:
                if not data:
                    raise RuntimeApiError(
                        f"the {self.api} closed the connection mid-response"
                    ) from None
                raise RuntimeApiError(f"malformed response from the {self.api}: {exc}") from None
            if not data and not events:
                raise RuntimeApiError(f"the {self.api} closed the connection mid-response")
            for index, event in enumerate(events):
                if event.__class__ is bytes:
                    parts.append(event)
                elif event.__class__ is ResponseHead:
                    head = event
                else:  # EndOfMessage: the response is complete
                    assert head is not None
                    unasked = index + 1 < len(events) or not parser.idle  # more than the response
                    connection = connection_option(head.headers)
                    if not data or unasked or closes_connection(head.version, connection):
                        self.close()
                    body = parts[0] if len(parts) == 1 else b"".join(parts)
                    return HttpResponse(head.status, head.headers, body)
            data = self._recv(first=False)


class ChunkedUpload:
    """The body of a request started by :meth:`Connection.start_chunked`, sent chunk by chunk.

    Each :meth:`write` is one chunk on the wire at once (``size-in-hex CRLF data CRLF``, one
    ``sendmsg``); :meth:`finish` sends the last chunk (``0 CRLF``), the trailer fields, the empty
    line, and reads the response.  A failure while sending closes the connection: the server
    cannot tell where the body was cut, so the request cannot be retried.
    """

    __slots__ = ("_conn", "_request", "finished")

    def __init__(self, conn: Connection, request: str) -> None:
        self._conn = conn
        self._request = request
        self.finished = False

    def write(self, data: bytes) -> None:
        """Send ``data`` as one chunk (nothing for empty data: a zero chunk ends the body)."""
        if self.finished:
            raise RuntimeApiError(f"{self._request}: the body was already finished")
        if data:
            self._send([chunk_size_line(len(data)), data, _CRLF])

    def finish(self, trailers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        """End the body (with ``trailers``) and read the server's response."""
        if self.finished:
            raise RuntimeApiError(f"{self._request}: the body was already finished")
        self.finished = True
        self._send([encode_last_chunk(trailers)])
        try:
            return self._conn._read_response()
        except (_StaleConnection, OSError) as exc:
            self._conn.close()
            raise RuntimeApiError(
                f"{self._request}: no response from the {self._conn.api}"
            ) from exc
        except RuntimeApiError:
            self._conn.close()
            raise

    def abandon(self) -> None:
        """Give up on the body: close the connection, so the server sees it truncated."""
        if not self.finished:
            self.finished = True
            self._conn.close()

    def _send(self, parts: list[bytes]) -> None:
        sock = self._conn._sock
        try:
            if sock is None:
                raise ConnectionResetError("connection already closed")
            Connection._send(sock, parts)
        except OSError as exc:
            self.finished = True
            self._conn.close()
            raise RuntimeApiError(f"{self._request} to the {self._conn.api} failed: {exc}") from exc
