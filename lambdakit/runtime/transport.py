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
- responses are framed by ``Content-Length``, by ``Transfer-Encoding: chunked`` (section 7.1;
  trailers are read and dropped), or by the server closing the connection (section 6.3);
- the connection is kept open between requests; a request sent on a reused connection that the
  server has meanwhile closed is retried once on a fresh one (the idle keep-alive race), which is
  safe because no byte of a response was received.

There are no timeouts: ``GET next`` blocks until an event arrives, and Python's retry of
interrupted system calls (PEP 475) lets signal handlers such as SIGTERM run meanwhile.
"""

from __future__ import annotations

import _socket

from lambdakit.wire import headers as h

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_RECV_SIZE = 64 * 1024
_MAX_HEAD = 64 * 1024
_CRLF = b"\r\n"


class RuntimeApiError(Exception):
    """The server could not be reached or answered with something we cannot read.

    The message names the API (``Connection``'s ``api``: the Runtime API unless told otherwise).
    """


class _StaleConnection(Exception):
    """The server closed a reused connection before answering: retry on a fresh one."""


class HttpResponse:
    """One response: status code, lower-cased header names, the whole body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

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
        self._sock: _socket.socket | None = None
        self._buf = bytearray()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

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
        return sock

    def _exchange(self, head: bytes, body: bytes) -> HttpResponse:
        sock = self._sock or self._connect()
        try:
            self._send(sock, [head, body] if body else [head])
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnection from exc
        return self._read_response()

    # --- reading -------------------------------------------------------------------------------

    def _fill(self, *, first: bool = False) -> None:
        """Read more bytes into the buffer; EOF is an error (or a stale connection, if first)."""
        assert self._sock is not None
        try:
            chunk = self._sock.recv(_RECV_SIZE)
        except ConnectionResetError as exc:
            if first:
                raise _StaleConnection from exc
            raise
        if not chunk:
            if first:
                raise _StaleConnection
            raise RuntimeApiError(f"the {self.api} closed the connection mid-response")
        self._buf += chunk

    def _read_response(self) -> HttpResponse:
        while True:
            status, version, fields = self._read_head()
            if status >= 200:
                break  # 1xx interim responses carry no body; the real one follows.
        body = self._read_body(status, fields)
        if version == "HTTP/1.0" or fields.get(h.CONNECTION, "").lower() == "close":
            self.close()
        return HttpResponse(status, fields, body)

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        first = not self._buf
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > _MAX_HEAD:
                raise RuntimeApiError(f"response head from the {self.api} is too large")
            self._fill(first=first)
            first = False
        lines = self._buf[:end].decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not code.isdigit() or not version.startswith("HTTP/"):
            raise RuntimeApiError(f"malformed status line from the {self.api}: {lines[0]!r}")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(code), version, fields

    def _read_body(self, status: int, fields: dict[str, str]) -> bytes:
        if status in (204, 304):
            return b""
        if "chunked" in fields.get(h.TRANSFER_ENCODING, "").lower():
            return self._read_chunked()
        length = fields.get(h.CONTENT_LENGTH)
        if length is not None:
            if not length.isdigit():
                raise RuntimeApiError(f"bad Content-Length from the {self.api}: {length!r}")
            return self._read_exact(int(length))
        return self._read_to_eof()

    def _read_exact(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._fill()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def _read_line(self) -> bytes:
        while (end := self._buf.find(_CRLF)) < 0:
            self._fill()
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_field = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise RuntimeApiError(
                    f"bad chunk size from the {self.api}: {size_field!r}"
                ) from None
            if size == 0:
                while self._read_line():  # trailer fields, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            self._read_exact(2)  # CRLF after the chunk data

    def _read_to_eof(self) -> bytes:
        assert self._sock is not None
        while chunk := self._sock.recv(_RECV_SIZE):
            self._buf += chunk
        data = bytes(self._buf)
        self.close()
        return data


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
            self._send([b"%x\r\n" % len(data), data, _CRLF])

    def finish(self, trailers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        """End the body (with ``trailers``) and read the server's response."""
        if self.finished:
            raise RuntimeApiError(f"{self._request}: the body was already finished")
        self.finished = True
        fields = "".join(f"{name}: {value}\r\n" for name, value in trailers)
        self._send([b"0\r\n" + fields.encode("latin-1") + _CRLF])
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
