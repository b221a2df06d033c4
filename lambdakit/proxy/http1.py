"""HTTP/1.1 framing without I/O, just enough for the Runtime API: bytes in, events out.

Theory of operation
-------------------
The Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) is plain
HTTP/1.1 on loopback: small heads, bodies framed by ``Content-Length``, and ``Transfer-Encoding:
chunked`` with trailers for streamed responses
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming).
A :class:`Parser` is fed whatever the socket produced and returns the events it completed, in
order:

* one head (:class:`RequestHead` or :class:`ResponseHead`), carrying its exact bytes in ``raw``
  so that a proxy that changes nothing forwards them unchanged;
* zero or more ``bytes`` objects, the body's payload (chunk framing removed);
* one :class:`EndOfMessage`, carrying the trailer fields of a chunked body.

Then the parser expects the next message on the same connection (keep-alive).  Framing follows
RFC 9112 §6.3: chunked beats ``Content-Length``; a response to ``HEAD`` and 1xx/204/304 responses
have no body; a response with neither is read until the connection closes
(:meth:`Parser.close`).  Malformed input raises :class:`ProtocolError`; the connection is then
unusable.  The parser is the hot path of every proxied call, so it works on ``bytes`` with
``find``/``partition`` and allocates one object per event.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from lambdakit.wire import headers as h

#: A head larger than this is refused (uvicorn and h11 default to 64 KiB and 16 KiB).
MAX_HEAD = 64 * 1024
#: Header fields as ``(lower-case name, value)`` pairs, in arrival order.
Headers = tuple[tuple[str, str], ...]


_HEX_DIGITS = b"0123456789abcdefABCDEF"


class ProtocolError(Exception):
    """The peer sent bytes that are not HTTP/1.1 we understand; close the connection."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    headers: Headers
    #: The head exactly as received, blank line included.
    raw: bytes


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: str
    headers: Headers
    raw: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    trailers: Headers = ()


END = EndOfMessage()
Event = RequestHead | ResponseHead | bytes | EndOfMessage


def header(fields: Headers, name: str) -> str | None:
    """The value of the first field called ``name`` (lower-case), or None."""
    for key, value in fields:
        if key == name:
            return value
    return None


class _Body(enum.Enum):
    NONE = "head"  # waiting for a head
    LENGTH = "length"
    CHUNK_SIZE = "chunk-size"
    CHUNK_DATA = "chunk-data"
    CHUNK_END = "chunk-crlf"
    TRAILERS = "trailers"
    UNTIL_CLOSE = "until-close"


class Parser:
    """Parses one direction of one connection: requests (``server=True``) or responses."""

    __slots__ = ("_buffer", "_head_only", "_remaining", "_server", "_state")

    def __init__(self, server: bool) -> None:
        self._server = server
        self._buffer = b""
        self._state = _Body.NONE
        self._remaining = 0
        #: Responses: the request was HEAD, so the next response has no body.
        self._head_only = False

    def expect_head_only(self) -> None:
        """The next response answers a ``HEAD`` request (clients call this before sending)."""
        self._head_only = True

    @property
    def idle(self) -> bool:
        """Between messages, with nothing buffered."""
        return self._state is _Body.NONE and not self._buffer

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events it completed."""
        buffer = self._buffer + data if self._buffer else data
        events: list[Event] = []
        pos = 0
        size = len(buffer)
        while pos < size:
            state = self._state
            if state is _Body.NONE:
                end = buffer.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_HEAD:
                        raise ProtocolError("message head too large")
                    break
                end += 4
                self._head(buffer[pos:end], events)
                pos = end
            elif state is _Body.LENGTH:
                take = min(self._remaining, size - pos)
                events.append(buffer[pos : pos + take] if pos or take < size else buffer)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _Body.NONE
                    events.append(END)
            elif state is _Body.CHUNK_DATA:
                take = min(self._remaining, size - pos)
                events.append(buffer[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _Body.CHUNK_END
            elif state is _Body.UNTIL_CLOSE:
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
        if self._state is _Body.UNTIL_CLOSE:
            self._state = _Body.NONE
            return [END]
        if self._state is not _Body.NONE or self._buffer:
            raise ProtocolError("connection closed in the middle of a message")
        return []

    # heads --------------------------------------------------------------------------------------
    def _head(self, raw: bytes, events: list[Event]) -> None:
        start, _, rest = raw[:-4].decode("latin-1").partition("\r\n")
        fields = _fields(rest)
        if self._server:
            method, target, version = _split_start(start, "request line")
            if not version.startswith("HTTP/1."):
                raise ProtocolError(f"unsupported version {version!r}")
            events.append(RequestHead(method, target, fields, raw))
            self._frame(fields, has_body=True, may_read_until_close=False, events=events)
            return
        version, code, reason = _split_start(start, "status line")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"malformed status line {start!r}")
        status = int(code)
        if status < 200:
            return  # interim (100 Continue): not an event; the final response follows
        events.append(ResponseHead(status, reason, fields, raw))
        head_only, self._head_only = self._head_only, False
        has_body = not head_only and status not in (204, 304)
        self._frame(fields, has_body=has_body, may_read_until_close=True, events=events)

    def _frame(
        self, fields: Headers, *, has_body: bool, may_read_until_close: bool, events: list[Event]
    ) -> None:
        if not has_body:
            events.append(END)
            return
        encoding = length = None
        for name, value in fields:
            if name == h.CONTENT_LENGTH:
                length = value
            elif name == h.TRANSFER_ENCODING:
                encoding = value
        if encoding is not None:
            if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding {encoding!r}")
            self._state = _Body.CHUNK_SIZE
            return
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad content-length {length!r}")
            self._remaining = int(length)
            if self._remaining:
                self._state = _Body.LENGTH
            else:
                events.append(END)
        elif may_read_until_close:
            self._state = _Body.UNTIL_CLOSE
        else:
            events.append(END)  # a request without framing has no body (RFC 9112 §6.3 item 7)

    # chunked ------------------------------------------------------------------------------------
    def _chunk_framing(self, buffer: bytes, pos: int, events: list[Event]) -> int:
        """Consume a chunk-size line, a chunk's CRLF or the trailer section; return the new pos."""
        state = self._state
        if state is _Body.CHUNK_END:
            if len(buffer) - pos < 2:
                return pos
            if buffer[pos : pos + 2] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
            self._state = _Body.CHUNK_SIZE
            return pos + 2
        if state is _Body.CHUNK_SIZE:
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                if len(buffer) - pos > 1024:
                    raise ProtocolError("chunk-size line too long")
                return pos
            size_text = buffer[pos:end].split(b";", 1)[0].strip()
            # Hex digits only: int() would also take "-6", "0x3" or "1_0".
            if not 0 < len(size_text) <= 16 or size_text.strip(_HEX_DIGITS):
                raise ProtocolError(f"bad chunk size {size_text!r}")
            self._remaining = int(size_text, 16)
            self._state = _Body.CHUNK_DATA if self._remaining else _Body.TRAILERS
            return end + 2
        # TRAILERS: field lines up to an empty line
        if buffer.startswith(b"\r\n", pos):
            self._state = _Body.NONE
            events.append(END)
            return pos + 2
        end = buffer.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(buffer) - pos > MAX_HEAD:
                raise ProtocolError("trailer section too large")
            return pos
        trailers = _fields(buffer[pos:end].decode("latin-1"))
        self._state = _Body.NONE
        events.append(EndOfMessage(trailers))
        return end + 4


def _split_start(line: str, what: str) -> tuple[str, str, str]:
    first, _, rest = line.partition(" ")
    second, _, third = rest.partition(" ")
    if not first or not second:
        raise ProtocolError(f"malformed {what} {line!r}")
    return first, second, third


def _fields(text: str) -> Headers:
    """Header field lines (CRLF-separated, already decoded) as lower-case name, value pairs."""
    if not text:
        return ()
    fields = []
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or not name.isascii():
            raise ProtocolError(f"bad header line {line[:80]!r}")
        fields.append((name.lower(), value.strip()))
    return tuple(fields)


# Encoding --------------------------------------------------------------------------------------
_FRAMING = frozenset((h.CONTENT_LENGTH, h.TRANSFER_ENCODING))


def encode_request_head(method: str, target: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """A request line and ``fields`` (framing fields included as given), blank line included."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_response_head(status: int, reason: str, fields: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def without_framing(fields: Headers) -> list[tuple[str, str]]:
    """``fields`` minus ``Content-Length`` and ``Transfer-Encoding`` (to be recomputed)."""
    return [(name, value) for name, value in fields if name not in _FRAMING]


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def encode_last_chunk(trailers: Headers = ()) -> bytes:
    fields = "".join(f"{name}: {value}\r\n" for name, value in trailers)
    return b"0\r\n" + fields.encode("latin-1") + b"\r\n"
