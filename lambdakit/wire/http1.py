"""HTTP/1.1 framing without I/O, for every lambdakit peer of the Lambda APIs: bytes in, events out.

Theory of operation
-------------------
The Runtime, Extensions and Telemetry APIs
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) are plain HTTP/1.1 on loopback:
small heads, bodies framed by ``Content-Length``, and ``Transfer-Encoding: chunked`` with
trailers for streamed responses
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming).
A :class:`Parser` reads one direction of one connection.  It is fed whatever the socket produced
and returns the events it completed, in order:

* one head (:class:`RequestHead` or :class:`ResponseHead`), carrying its exact bytes in ``raw``
  so that a proxy that changes nothing forwards them unchanged;
* zero or more ``bytes`` objects, the body's payload (chunk framing removed);
* one :class:`EndOfMessage`, carrying the trailer fields of a chunked body.

Then the parser expects the next message on the same connection (keep-alive, pipelining).  There
is no I/O here: the runtime's transport, the proxy, the telemetry listener and the tests' fakes
own their sockets and share this one definition of what is valid.  The runtime imports this
module before its first ``GET next``, so it imports nothing (no ``enum``, ``dataclasses`` or
``re``), and it is the hot path of every proxied call and every invocation, so it works on
``bytes`` with ``find`` / ``partition`` and allocates one object per event.

What is valid (RFC 9112; anything else raises :class:`ProtocolError`, after which the parser
refuses more input: close the connection):

* start lines (§3, §4): ``token SP target SP HTTP/1.x`` and ``HTTP/1.x SP 3DIGIT [SP reason]``;
  empty lines before a request line are skipped (§2.2);
* heads (§2.2, §5): at most :data:`MAX_HEAD` bytes; every line ends with CRLF; no control
  character but HTAB; field lines are ``token ":" OWS value OWS``, with no whitespace before the
  colon (§5.1); an obs-fold line (one starting with SP or HTAB, §5.2) is refused in a request
  and unfolded into the previous field's value (joined by one SP) in a response;
* framing (§6): ``Transfer-Encoding`` whose last coding is ``chunked``, or ``Content-Length``
  (ASCII digits, repeated only with the same value), never both (§6.3: request smuggling).  A
  request with neither has no body; a response with neither is read until the connection closes
  (:meth:`Parser.close`); a response to ``HEAD`` and 1xx, 204 and 304 responses have none;
* chunks (§7.1): a size of 1 to 16 hex digits with nothing before it, optional extensions after
  ``;`` (ignored), in a line of at most :data:`MAX_CHUNK_LINE` bytes; the data, then CRLF; the
  last chunk (size 0), then trailer fields (the rules of header fields, in at most
  :data:`MAX_HEAD` bytes) and an empty line.

Interim responses (1xx, such as ``100 Continue``) are dropped, and the final response follows;
``Parser(server=False, interim=True)`` reports each as a message of its own (a head, then END).
"""

from __future__ import annotations

from lambdakit.wire import headers as h

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

#: A head (start line, fields, empty line) or trailer section larger than this is refused
#: (uvicorn and httptools allow 64 KiB, h11 16 KiB).
MAX_HEAD = 64 * 1024
#: A chunk-size line (size, extensions, CRLF) larger than this is refused.
MAX_CHUNK_LINE = 1024
#: A chunk size has at most 16 hex digits (64 bits); a Content-Length at most 19 digits.
MAX_CHUNK_SIZE_DIGITS = 16
MAX_CONTENT_LENGTH_DIGITS = 19

#: Header fields as ``(lower-case name, value)`` pairs, in arrival order.
Headers = tuple[tuple[str, str], ...]

_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
#: tchar (RFC 9110 §5.6.2): ``name.strip(_TCHAR)`` is empty exactly when every character is one.
_TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX_DIGITS = b"0123456789abcdefABCDEF"
#: Fields :func:`parse_request_head` and :func:`parse_response_head` also return on their own.
_CONNECTION_FIELDS = frozenset((h.CONTENT_LENGTH, h.TRANSFER_ENCODING, h.CONNECTION))
#: Optional whitespace (RFC 9110 §5.6.3).
_OWS = " \t"
#: Bytes a head may hold only as CRLF (CR, LF) or not at all (the other controls but HTAB).
_CONTROLS = (
    b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b\x0c\x0d\x0e\x0f"
    b"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"
)


class ProtocolError(Exception):
    """The peer sent bytes that are not HTTP/1.1 we accept; close the connection."""


class _Record(tuple[object, ...]):
    """Immutable and compared by value, as a frozen dataclass: a tuple whose fields have names.

    The parser builds one with a single ``tuple.__new__`` call (about four times cheaper than a
    frozen dataclass's ``__init__``), and it needs no ``dataclasses`` import at cold start; hot
    paths unpack it (``status, reason, fields, raw, version = head``) rather than read its
    properties one by one.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({shown})"


_new = tuple.__new__

if TYPE_CHECKING:  # to a type checker, each record is the tuple it is (its unpacking is typed)
    _RequestHeadBase = tuple[str, str, Headers, bytes, str]
    _ResponseHeadBase = tuple[int, str, Headers, bytes, str]
    _EndOfMessageBase = tuple[Headers]
else:
    _RequestHeadBase = _ResponseHeadBase = _EndOfMessageBase = _Record


class RequestHead(_RequestHeadBase):
    """A request line and its header fields; ``raw`` is the head exactly as received."""

    __slots__ = ()
    _fields = ("method", "target", "headers", "raw", "version")
    if TYPE_CHECKING:

        @property
        def method(self) -> str: ...

        @property
        def target(self) -> str: ...

        @property
        def headers(self) -> Headers: ...

        @property
        def raw(self) -> bytes: ...

        @property
        def version(self) -> str: ...

    else:
        method = property(lambda self: self[0])
        target = property(lambda self: self[1])
        headers = property(lambda self: self[2])
        raw = property(lambda self: self[3])
        version = property(lambda self: self[4])

    def __new__(
        cls, method: str, target: str, headers: Headers, raw: bytes, version: str = "HTTP/1.1"
    ) -> RequestHead:
        return _new(cls, (method, target, headers, raw, version))


class ResponseHead(_ResponseHeadBase):
    """A status line and its header fields; ``raw`` is the head exactly as received."""

    __slots__ = ()
    _fields = ("status", "reason", "headers", "raw", "version")
    if TYPE_CHECKING:

        @property
        def status(self) -> int: ...

        @property
        def reason(self) -> str: ...

        @property
        def headers(self) -> Headers: ...

        @property
        def raw(self) -> bytes: ...

        @property
        def version(self) -> str: ...

    else:
        status = property(lambda self: self[0])
        reason = property(lambda self: self[1])
        headers = property(lambda self: self[2])
        raw = property(lambda self: self[3])
        version = property(lambda self: self[4])

    def __new__(
        cls, status: int, reason: str, headers: Headers, raw: bytes, version: str = "HTTP/1.1"
    ) -> ResponseHead:
        return _new(cls, (status, reason, headers, raw, version))


class EndOfMessage(_EndOfMessageBase):
    """The end of a message's body, with the trailer fields of a chunked one."""

    __slots__ = ()
    _fields = ("trailers",)
    if TYPE_CHECKING:

        @property
        def trailers(self) -> Headers: ...

    else:
        trailers = property(lambda self: self[0])

    def __new__(cls, trailers: Headers = ()) -> EndOfMessage:
        return _new(cls, (trailers,))


END = EndOfMessage()
Event = RequestHead | ResponseHead | bytes | EndOfMessage


def header(fields: Headers, name: str) -> str | None:
    """The value of the first field called ``name`` (lower-case), or None."""
    for key, value in fields:
        if key == name:
            return value
    return None


def connection_option(fields: Iterable[tuple[str, str]]) -> str | None:
    """The ``Connection`` field's value (its lines joined), or None: from a head's fields, or
    (faster) from its framing fields."""
    options = [value for name, value in fields if name == h.CONNECTION]
    return ", ".join(options) if options else None


def closes_connection(version: str, connection: str | None) -> bool:
    """The connection ends after a message of HTTP ``version`` with this ``Connection`` field
    value (None: no such field): HTTP/1.0, or the ``close`` option (§9.3, §9.6)."""
    if version != "HTTP/1.1":
        return True
    if connection is None or "close" not in connection.lower():
        return False
    return any(token.strip(_OWS).lower() == "close" for token in connection.split(","))


# Parser states (ints, not an enum: see the module docstring).
_HEAD = 0  # waiting for a head
_LENGTH = 1  # in a Content-Length body
_CHUNK_SIZE = 2  # waiting for a chunk-size line
_CHUNK_DATA = 3
_CHUNK_END = 4  # waiting for the CRLF after a chunk's data
_TRAILERS = 5
_UNTIL_CLOSE = 6  # in a response body that the connection's end ends
_FAILED = 7  # after a ProtocolError


class Parser:
    """Parses one direction of one connection: requests (``server=True``) or responses.

    ``whole_chunks``: each chunk of a chunked body is one ``bytes`` event, given once all of it
    has arrived (for recorders; the default passes on each piece as it arrives, which a proxy
    needs, and buffers nothing).  ``interim``: report 1xx responses (see the module docstring).
    """

    __slots__ = (
        "_buffer",
        "_head_only",
        "_interim",
        "_remaining",
        "_server",
        "_state",
        "_whole_chunks",
    )

    def __init__(self, server: bool, *, whole_chunks: bool = False, interim: bool = False) -> None:
        self._server = server
        self._whole_chunks = whole_chunks
        self._interim = interim
        self._buffer = b""
        self._state = _HEAD
        self._remaining = 0
        #: Responses: the request was HEAD, so the next response has no body.
        self._head_only = False

    def expect_head_only(self) -> None:
        """The next response answers a ``HEAD`` request (clients call this before sending)."""
        self._head_only = True

    @property
    def idle(self) -> bool:
        """Between messages, with nothing buffered."""
        return self._state == _HEAD and not self._buffer

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completed."""
        if self._state == _FAILED:
            raise ProtocolError("the connection already sent malformed bytes")
        try:
            return self._feed(self._buffer + data if self._buffer else data)
        except ProtocolError:
            self._state = _FAILED
            self._buffer = b""
            raise

    def _feed(self, buffer: bytes) -> list[Event]:
        events: list[Event] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            state = self._state
            if state == _HEAD:
                if self._server and buffer.startswith(b"\r\n", pos):
                    pos += 2  # an empty line before a request line (§2.2)
                    continue
                end = buffer.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
                if end < 0:
                    if size - pos >= MAX_HEAD:
                        raise ProtocolError(f"message head too large (over {MAX_HEAD} bytes)")
                    break
                end += 4
                self._head(buffer[pos:end], events)
                pos = end
            elif state in (_LENGTH, _CHUNK_DATA):
                remaining = self._remaining
                if size - pos >= remaining:
                    whole = not pos and remaining == size
                    events.append(buffer if whole else buffer[pos : pos + remaining])
                    pos += remaining
                    self._remaining = 0
                    if state == _LENGTH:
                        self._state = _HEAD
                        events.append(END)
                    else:
                        self._state = _CHUNK_END
                elif state == _CHUNK_DATA and self._whole_chunks:
                    break
                else:
                    events.append(buffer[pos:] if pos else buffer)
                    self._remaining -= size - pos
                    pos = size
            elif state == _UNTIL_CLOSE:
                events.append(buffer[pos:] if pos else buffer)
                pos = size
            else:
                new_pos = self._chunk_framing(buffer, pos, events)
                if new_pos == pos:
                    break
                pos = new_pos
        self._buffer = buffer[pos:] if pos < size else b""
        return events

    def close(self) -> list[Event]:
        """The peer closed: end a read-until-close body, or fail a message cut short."""
        if self._state == _UNTIL_CLOSE:
            self._state = _HEAD
            return [END]
        leftover = self._buffer.lstrip(b"\r\n") if self._server else self._buffer
        if self._state != _HEAD or leftover:
            self._state = _FAILED
            raise ProtocolError("connection closed in the middle of a message")
        return []

    # heads --------------------------------------------------------------------------------------
    def _head(self, raw: bytes, events: list[Event]) -> None:
        if self._server:
            request, framing = parse_request_head(raw)
            events.append(request)
            length = body_length(framing)
            self._body(0 if length == UNFRAMED else length, events)  # §6.3 item 7
            return
        response, framing = parse_response_head(raw)
        status = response[0]
        if status < 200:
            if self._interim:
                events.append(response)
                events.append(END)
            return  # interim (100 Continue): the final response follows
        events.append(response)
        head_only, self._head_only = self._head_only, False
        if head_only or status in (204, 304):
            events.append(END)
        else:
            self._body(body_length(framing), events)

    def _body(self, length: int, events: list[Event]) -> None:
        """Expect a body of ``length`` bytes (or CHUNKED, or UNFRAMED: until the peer closes)."""
        if length > 0:
            self._remaining = length
            self._state = _LENGTH
        elif length == 0:
            events.append(END)
        else:
            self._state = _CHUNK_SIZE if length == CHUNKED else _UNTIL_CLOSE

    # chunked ------------------------------------------------------------------------------------
    def _chunk_framing(self, buffer: bytes, pos: int, events: list[Event]) -> int:
        """Consume a chunk-size line, a chunk's CRLF or the trailer section; return the new pos."""
        state = self._state
        if state == _CHUNK_END:
            if len(buffer) - pos < 2:
                return pos
            if not buffer.startswith(b"\r\n", pos):
                raise ProtocolError("chunk data not followed by CRLF")
            self._state = _CHUNK_SIZE
            return pos + 2
        if state == _CHUNK_SIZE:
            end = buffer.find(b"\r\n", pos, pos + MAX_CHUNK_LINE)
            if end < 0:
                if len(buffer) - pos >= MAX_CHUNK_LINE:
                    raise ProtocolError(f"chunk-size line too long (over {MAX_CHUNK_LINE} bytes)")
                return pos
            self._remaining = parse_chunk_size(buffer[pos:end])
            self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            return end + 2
        # _TRAILERS: field lines up to an empty line
        if buffer.startswith(b"\r\n", pos):
            self._state = _HEAD
            events.append(END)
            return pos + 2
        end = buffer.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
        if end < 0:
            if len(buffer) - pos >= MAX_HEAD:
                raise ProtocolError(f"trailer section too large (over {MAX_HEAD} bytes)")
            return pos
        lines = buffer[pos:end].decode("latin-1").split("\r\n")
        _check_controls(buffer[pos : end + 4], len(lines) + 1, "trailer section")
        trailers = _fields(lines, 0, [], fold=not self._server)
        self._state = _HEAD
        events.append(EndOfMessage(trailers))
        return end + 4


#: :func:`body_length` for a chunked body, and for a head with no framing field (a request then
#: has no body; a response's ends when the connection does).
CHUNKED = -1
UNFRAMED = -2
#: The fields that frame a message (``Content-Length``, ``Transfer-Encoding``, ``Connection``),
#: as :func:`parse_request_head` and :func:`parse_response_head` return them for
#: :func:`body_length` and :func:`connection_option`.
Framing = list[tuple[str, str]]


def parse_request_head(raw: bytes) -> tuple[RequestHead, Framing]:
    """A whole request head (``raw`` ends with the empty line) and its framing fields."""
    lines = raw[:-4].decode("latin-1").split("\r\n")
    _check_controls(raw, len(lines) + 1, "head")
    start = lines[0]
    method, _, rest_of_line = start.partition(" ")
    target, _, version = rest_of_line.partition(" ")
    if (
        version not in _VERSIONS
        or not method
        or method.strip(_TCHAR)
        or not target
        or not target.isascii()
    ):
        raise ProtocolError(f"malformed request line {start[:100]!r}")
    framing: Framing = []
    fields = _fields(lines, 1, framing, fold=False)
    return _new(RequestHead, (method, target, fields, raw, version)), framing


def parse_response_head(raw: bytes) -> tuple[ResponseHead, Framing]:
    """A whole response head (``raw`` ends with the empty line) and its framing fields."""
    lines = raw[:-4].decode("latin-1").split("\r\n")
    _check_controls(raw, len(lines) + 1, "head")
    version, _, rest_of_line = lines[0].partition(" ")
    code, _, reason = rest_of_line.partition(" ")
    if version not in _VERSIONS or len(code) != 3 or not code.isdigit() or not code.isascii():
        raise ProtocolError(f"malformed status line {lines[0][:100]!r}")
    framing: Framing = []
    fields = _fields(lines, 1, framing, fold=True)
    return _new(ResponseHead, (int(code), reason, fields, raw, version)), framing


def body_length(framing: Framing) -> int:
    """The length of a body from its head's framing fields (§6.3), or CHUNKED, or UNFRAMED.

    (Whether a response has a body at all depends on its request and status: see ``Parser``.)
    """
    encoding = length = None
    for name, value in framing:
        if name == h.CONTENT_LENGTH:
            if length is not None and value != length:
                raise ProtocolError(f"conflicting content-length values {length!r}, {value!r}")
            length = value
        elif name == h.TRANSFER_ENCODING:
            encoding = value if encoding is None else f"{encoding}, {value}"
    if encoding is not None:
        if length is not None:
            raise ProtocolError("both content-length and transfer-encoding")
        if encoding.rpartition(",")[2].strip(_OWS).lower() != "chunked":
            raise ProtocolError(f"unsupported transfer-encoding {encoding!r}")
        return CHUNKED
    if length is None:
        return UNFRAMED
    if not 0 < len(length) <= MAX_CONTENT_LENGTH_DIGITS or not length.isdigit():
        raise ProtocolError(f"bad content-length {length!r}")
    if not length.isascii():
        raise ProtocolError(f"bad content-length {length!r}")
    return int(length)


def parse_chunk_size(line: bytes) -> int:
    """The size in a chunk-size line (CRLF excluded): hex digits, then ``;`` extensions."""
    digits, semicolon, _ = line.partition(b";")
    if semicolon:
        digits = digits.rstrip(b" \t")  # BWS before the extensions
        _check_controls(line, 0, "chunk extension")
    if not 0 < len(digits) <= MAX_CHUNK_SIZE_DIGITS or digits.strip(_HEX_DIGITS):
        # Hex digits only: int(x, 16) would also take "-6", "0x3", "1_0" or " 5".
        raise ProtocolError(f"bad chunk size {digits[:40]!r}")
    return int(digits, 16)


def _check_controls(raw: bytes, crlf: int, what: str) -> None:
    """No control characters in ``raw`` but HTAB and its ``crlf`` CRLFs (§2.2, §5.5).

    ``crlf`` is counted by the caller, which has split ``raw`` into lines: any other CR or LF is
    a bare one, which some parsers take for a line end (a way to smuggle a field past us).
    """
    if len(raw) - len(raw.translate(None, _CONTROLS)) != 2 * crlf:
        raise ProtocolError(f"control character or bare CR/LF in the {what}")


#: Field names seen, as received -> lower-cased: the Lambda APIs use a handful, so after the
#: first message a name costs one dict lookup instead of a token check and ``lower()``.
_NAMES: dict[str, str] = {}
_MAX_NAMES = 512


def _fields(lines: list[str], first: int, framing: list[tuple[str, str]], *, fold: bool) -> Headers:
    """Field lines (``lines[first:]``, decoded) as lower-case name, value pairs; those that
    frame the message (``Content-Length``, ``Transfer-Encoding``, ``Connection``) are also
    appended to ``framing``."""
    fields: list[tuple[str, str]] = []
    names = _NAMES
    for index in range(first, len(lines)):
        name, colon, value = lines[index].partition(":")
        lowered = names.get(name)
        if lowered is None or not colon:
            if not colon or not name or name.strip(_TCHAR):
                line = lines[index]
                if fold and fields and line[:1] in (" ", "\t"):
                    # obs-fold in a response: part of the previous field's value (§5.2), but
                    # not of one that frames the message (its value is taken already)
                    previous, folded = fields[-1]
                    if previous not in _CONNECTION_FIELDS:
                        fields[-1] = (previous, f"{folded} {line.strip(_OWS)}".strip(_OWS))
                        continue
                raise ProtocolError(f"bad header line {line[:100]!r}")
            lowered = name.lower()
            if len(names) < _MAX_NAMES:
                names[name] = lowered
        field = (lowered, value.strip(_OWS))
        fields.append(field)
        if lowered in _CONNECTION_FIELDS:
            framing.append(field)
    return tuple(fields)


# Encoding --------------------------------------------------------------------------------------


def encode_request_head(method: str, target: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """A request line and ``fields`` (framing fields included as given), empty line included."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_response_head(status: int, reason: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """A status line and ``fields`` (framing fields included as given), empty line included."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def without_framing(fields: Headers) -> list[tuple[str, str]]:
    """``fields`` minus ``Content-Length`` and ``Transfer-Encoding`` (to be recomputed)."""
    return [(n, v) for n, v in fields if n not in (h.CONTENT_LENGTH, h.TRANSFER_ENCODING)]


def chunk_size_line(size: int) -> bytes:
    """The line before ``size`` bytes of chunk data (for writers that send the data apart)."""
    return b"%x\r\n" % size


def encode_chunk(data: bytes) -> bytes:
    """One chunk carrying ``data`` (nothing for empty data: a zero-size chunk ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def encode_last_chunk(trailers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The last chunk, the trailer fields and the empty line that end a chunked body."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in trailers)
    return b"0\r\n" + fields.encode("latin-1") + b"\r\n"
