"""HTTP/1.1 framing without I/O: bytes in, :class:`Request` out; :class:`Response` in, bytes out.

Parsing is httptools' (llhttp): it reads chunked bodies and reports trailer fields as header
callbacks that arrive after the last body chunk and before the message completes (RFC 9112
§7.1.2), which is how the Runtime API's streaming error trailers reach us.

Plain requests skip it.  Every invocation brings serve three requests (the caller's, the
runtime's ``next`` and its ``/response``), and llhttp calls back into Python a dozen times for
each (the URL, every header, the end of the head, the body, the end).  A request that arrives
whole in one read and is plain (``HTTP/1.1``, a common method, an origin-form target, token
field names each given once, a ``Content-Length`` or no body, no ``Transfer-Encoding``,
``Connection``, ``Expect`` or ``Upgrade``, no control character but HTAB) is read by
:func:`scan_plain` instead, with a handful of C calls; anything else, or a request cut across
reads with more than a small body to come, goes to llhttp, which also decides what is an
error.  The two meet only between messages, so each request is read by one of them whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import httptools

from lambdakit.emulator.http.messages import BodyStream, Request, Response

#: Decides, from a request's path and headers, whether to dispatch it before its body arrives.
StreamPredicate = Callable[[str, Mapping[str, str]], bool]


#: Most bytes of request line, headers and trailers one request may have (431 beyond).
MAX_HEAD_BYTES = 64 * 1024
#: Most header fields one request may have.
MAX_HEADERS = 200
#: A plain request whose body has not all arrived is held for the rest up to this size
#: (larger ones go to llhttp, which does not copy what it has already seen).
MAX_HELD_BODY = 64 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not HTTP/1.1 (or too much of them); close the connection."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RequestReader:
    """Feeds bytes to the parser and collects complete requests, in order."""

    def __init__(self, max_body: int, streams: StreamPredicate | None = None) -> None:
        self._max_body = max_body
        self._streams = streams
        #: The body still streaming in, for a request already dispatched.
        self.stream: BodyStream | None = None
        #: A client sent ``Expect: 100-continue`` and waits for the interim answer (curl does so
        #: for bodies over 1 KB); the I/O layer sends it and clears the flag.
        self.expects_continue = False
        #: A request has begun and its headers are not complete yet (for a read timeout).
        self.in_head = False
        self._parser = httptools.HttpRequestParser(self)
        #: llhttp is between messages: the next bytes may be scanned (see the module docstring).
        self._between = True
        #: A plain request's head whose (small) body is still on its way.
        self._partial = b""
        self._error: ProtocolError | None = None
        self.requests: deque[Request] = deque()
        # Per-request state, reset by on_message_begin.
        self._url = b""
        self._target = ("", "")
        self._headers: dict[str, str] = {}
        self._repeated: dict[str, list[str]] | None = None
        self._trailers: dict[str, str] = {}
        self._in_trailers = False
        self._head_bytes = 0
        self._keep_alive = True
        self._http10 = False
        self._refused = False
        self._body: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Parse ``data``; complete requests are appended to :attr:`requests`."""
        if self._between:
            if self._partial:
                data, self._partial = self._partial + data, b""
            data = self._take_plain(data)
            if not data:
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            raise ProtocolError("protocol upgrades are not supported") from exc
        except httptools.HttpParserError as exc:
            # An error raised in one of our callbacks reaches us wrapped ("User callback error").
            error, self._error = self._error, None
            raise error or ProtocolError(str(exc)) from exc

    def _take_plain(self, data: bytes) -> bytes:
        """Queue the plain requests ``data`` begins with (see :func:`scan_plain`); the rest,
        from the first request that is not plain or not whole, is llhttp's."""
        pos = 0
        size = len(data)
        while pos < size:
            end = data.find(b"\r\n\r\n", pos, pos + MAX_HEAD_BYTES)
            if end < 0:
                break
            head = data[pos : end + 2]
            scan = _SCANNED.get(head)
            if scan is None:
                scan = _scan(head)
                if scan is None:
                    break
            method, path, query, headers, length = scan
            body_end = end + 4 + length
            if length > self._max_body:
                break
            if body_end > size:
                if length <= MAX_HELD_BODY:  # most clients write the head, then the body
                    self._partial = data[pos:]
                    return b""
                break
            if self._streams is not None and self._streams(path, headers):
                break
            body = data[end + 4 : body_end] if length else b""
            self.requests.append(Request(method, path, query, headers, body, body_size=length))
            pos = body_end
        return data[pos:] if pos else data

    def _fail(self, message: str, status: int) -> None:
        self._error = ProtocolError(message, status)
        raise self._error

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail("request header fields too large", 431)

    # httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._between = False
        self._url = b""
        self._headers = {}
        self._repeated = None
        self._trailers = {}
        self._in_trailers = False
        self._head_bytes = 0
        self._body = []
        self._size = 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # On every header of every request: the checks are inlined.
        self._head_bytes += len(name) + len(value) + 4
        target = self._trailers if self._in_trailers else self._headers
        if self._head_bytes > MAX_HEAD_BYTES:
            self._fail("request header fields too large", 431)
        if len(target) >= MAX_HEADERS:
            self._fail("too many header fields", 431)
        key = name.decode("latin-1").lower()
        if key in target and target is self._headers:
            self._repeat(key, value.decode("latin-1"))
        target[key] = value.decode("latin-1")

    def _repeat(self, key: str, value: str) -> None:
        """A header field sent again: ``headers`` keeps the last value, ``repeated`` them all."""
        if self._repeated is None:
            self._repeated = {}
        self._repeated.setdefault(key, [self._headers[key]]).append(value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._in_trailers = True
        # Read here: once feed() returns, the parser has moved on to the next message.
        self._keep_alive = bool(self._parser.should_keep_alive())
        self._http10 = self._parser.get_http_version() == "1.0"
        self.stream = None
        self._refused = False
        self._target = self._path()
        declared = self._headers.get("content-length", "")
        expects_continue = self._headers.get("expect", "").lower() == "100-continue"
        if expects_continue and declared.isdigit() and int(declared) > self._max_body:
            # A client waiting for 100-continue gets the refusal instead and sends no body;
            # the connection closes after the answer.  (Others send the body anyway: it is read
            # and dropped, since closing on unread data would reset the answer away.)
            self._refused = True
            self._keep_alive = False
            self._complete(b"", body_too_large=True, body_size=int(declared))
            return
        if expects_continue:
            self.expects_continue = True
        if self._streams is not None and self._streams(self._target[0], self._headers):
            self.stream = BodyStream()
            self._complete(b"", stream=self.stream)

    def on_body(self, body: bytes) -> None:
        if self.stream is not None:
            self.stream.feed(body)
            return
        if self._refused:
            return
        self._size += len(body)
        if self._size <= self._max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._between = True
        if self.stream is not None:
            stream, self.stream = self.stream, None
            stream.finish(self._trailers)
            return
        if self._refused:
            return  # answered at headers-complete
        too_large = self._size > self._max_body
        body = b"" if too_large else b"".join(self._body)
        self._complete(
            body, trailers=self._trailers, body_too_large=too_large, body_size=self._size
        )
        self._body = []

    def _path(self) -> tuple[str, str]:
        path, _, query = self._url.decode("latin-1").partition("?")
        return path, query

    def _complete(self, body: bytes, **fields: Any) -> None:
        """Queue the request being parsed (with ``body`` and any other Request fields)."""
        path, query = self._target
        method = self._parser.get_method().decode("latin-1")
        if self._repeated is not None:
            fields["repeated_headers"] = {k: tuple(v) for k, v in self._repeated.items()}
        self.requests.append(
            Request(
                method,
                path,
                query,
                self._headers,
                body,
                keep_alive=self._keep_alive,
                http10=self._http10,
                **fields,
            )
        )

    def abort(self) -> None:
        """The connection ended: a body still streaming in was truncated."""
        stream, self.stream = self.stream, None
        if stream is not None and not stream.finished:
            stream.abort()


# Plain requests (see the module docstring) -----------------------------------------------------
#: Methods a plain request may have (others, and any error, are llhttp's to judge).
_PLAIN_METHODS = {
    m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
}
#: Every control byte but HTAB: a head may hold CR and LF only as its CRLF line ends.
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
#: tchar (RFC 9110 §5.6.2): ``name.strip(_TCHAR)`` is empty exactly for a token.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Fields that make a request llhttp's: they change its framing or the connection.
_NOT_PLAIN = frozenset(("transfer-encoding", "connection", "expect", "upgrade"))
#: Field names seen to be tokens, as received -> lower case (bounded).
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 512
_MAX_LENGTH_DIGITS = 19


def scan_plain(data: bytes, start: int, end: int) -> tuple[str, str, dict[str, str], int] | None:
    """A plain request head, ``data[start:end]`` (up to its last field line's CRLF):
    ``(method, target, headers, body length)``, or None when llhttp must read it."""
    line_end = data.find(b"\r\n", start, end)
    space = data.find(b" ", start, line_end)
    method = _PLAIN_METHODS.get(data[start:space]) if space > start else None
    if method is None:
        return None
    target_at = start + len(method) + 1
    if data[line_end - 9 : line_end] != b" HTTP/1.1" or data[target_at : target_at + 1] != b"/":
        return None
    target = data[target_at : line_end - 9]
    head = data[start:end]
    if b" " in target or len(head) - len(head.translate(None, _CONTROLS)) != 2 * head.count(
        b"\r\n"
    ):
        return None  # a space in the target, a control byte, or a bare CR or LF
    headers: dict[str, str] = {}
    if line_end + 2 < end:
        names = _NAMES
        for line in data[line_end + 2 : end - 2].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            key = names.get(name)
            if key is None:
                if not colon or not name or name.strip(_TCHAR):
                    return None
                key = name.decode("latin-1").lower()
                if len(names) < _MAX_NAMES:
                    names[name] = key
            if key in headers or key in _NOT_PLAIN:
                return None
            headers[key] = value.strip(b" \t").decode("latin-1")
    declared = headers.get("content-length")
    if declared is None:
        length = 0
    elif declared.isdigit() and declared.isascii() and len(declared) <= _MAX_LENGTH_DIGITS:
        length = int(declared)
    else:
        return None
    if len(headers) > MAX_HEADERS:
        return None
    return method, target.decode("latin-1"), headers, length


#: A scanned head: method, path, query, headers (read-only: shared once remembered), body length.
_Scanned = tuple[str, str, str, Mapping[str, str], int]
#: Heads that came byte for byte more than once, scanned (bounded).  A runtime's ``next`` and a
#: benchmark's or a poller's invoke repeat exactly; a ``/response`` (its path holds the request
#: id) never does, so a head is kept only on its second sighting and ``_SEEN_ONCE`` is a bounded
#: set of candidates; each is emptied when full (both hold heads of at most 2 KiB).
_SCANNED: dict[bytes, _Scanned] = {}
_SEEN_ONCE: set[bytes] = set()
_MAX_SCANNED = 256
_MAX_SEEN_ONCE = 1024
_MAX_REMEMBERED_HEAD = 2048


def _scan(head: bytes) -> _Scanned | None:
    """:func:`scan_plain` of a whole head (up to its last field line's CRLF), remembered."""
    scan = scan_plain(head, 0, len(head))
    if scan is None:
        return None
    method, target, headers, length = scan
    path, _, query = target.partition("?")
    if len(head) <= _MAX_REMEMBERED_HEAD:
        _remember(head, (method, path, query, MappingProxyType(headers), length))
    return method, path, query, headers, length


def _remember(head: bytes, scanned: _Scanned) -> None:
    """Keep ``head`` in the table on its second sighting; each table starts again when full."""
    if head in _SEEN_ONCE:
        if len(_SCANNED) >= _MAX_SCANNED:
            _SCANNED.clear()  # environments come and go (each has its port in its Host)
        _SCANNED[head] = scanned
    else:
        if len(_SEEN_ONCE) >= _MAX_SEEN_ONCE:
            _SEEN_ONCE.clear()
        _SEEN_ONCE.add(head)


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}


def encode_head(
    status: int,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    keep_alive: bool,
    chunked: bool = True,
) -> bytes:
    """Status line and headers of a streamed response (chunked, or ended by closing)."""
    head = [_STATUS_LINES.get(status) or _status_line(status)]
    for name, value in headers:
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    if chunked:
        head.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive or not chunked:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


#: Responses given again and again (the Runtime API's 202), as ``id -> (response, bytes to
#: keep the connection, bytes to close it)``; the response is kept, so its id is never reused.
_PREENCODED: dict[int, tuple[Response, bytes, bytes]] = {}


def preencoded(response: Response) -> Response:
    """``response``, encoded once here for every time it is sent (a module's constant)."""
    _PREENCODED[id(response)] = (
        response,
        _encode(response, True),
        _encode(response, False),
    )
    return response


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Serialize ``response`` with a ``Content-Length`` and the connection disposition."""
    known = _PREENCODED.get(id(response))
    if known is not None and known[0] is response:
        return known[1] if keep_alive else known[2]
    return _encode(response, keep_alive)


def _encode(response: Response, keep_alive: bool) -> bytes:
    status = _STATUS_LINES.get(response.status) or _status_line(response.status)
    fields = "".join([f"{name}: {value}\r\n" for name, value in response.headers])
    closing = b"Connection: close\r\n" if not keep_alive or response.close else b""
    body = response.body
    return b"%s%sContent-Length: %d\r\n%s\r\n%s" % (
        status,
        fields.encode("latin-1"),
        len(body),
        closing,
        body,
    )
