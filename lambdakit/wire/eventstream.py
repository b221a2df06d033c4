"""AWS event-stream frames (``application/vnd.amazon.eventstream``): encoded, decoded, no I/O.

Theory of operation: ``InvokeWithResponseStream`` answers with one HTTP body that is a sequence of
binary messages.  Each message is self-delimiting (all integers big-endian)::

    +-------------------+--------------------+---------------------+
    | total length (4)  | headers length (4) | prelude CRC32 (4)   |   prelude: CRC of the first 8
    +-------------------+--------------------+---------------------+
    | headers (headers length bytes)                               |
    | payload (total - headers - 16 bytes)                         |
    +--------------------------------------------------------------+
    | message CRC32 (4): of every preceding byte of the message    |
    +--------------------------------------------------------------+

and each header is ``name length (1) | name (UTF-8) | type (1) | value``, where the value's
layout depends on the type (:class:`HeaderType`).  The format is botocore's
(``botocore/eventstream.py``) and the AWS SDKs'; the limits below are the ones botocore enforces,
so a frame we accept, botocore accepts.

:class:`EventStreamDecoder` is incremental: :meth:`~EventStreamDecoder.feed` it bytes as they
arrive and it returns the messages completed so far.  The Lambda events are
:class:`PayloadChunk` (raw bytes of the function's response) and :class:`InvokeComplete` (the
end of the stream, with the error, if any); ``InvokeWithResponseStreamResponseEvent`` in the Lambda
service model (API version 2015-03-31) defines both.
"""

from __future__ import annotations

import enum
import json
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

#: Prelude: total length, headers length, prelude CRC.
PRELUDE_LENGTH = 12
#: The message CRC after the payload.
MESSAGE_CRC_LENGTH = 4
#: Limits botocore enforces when it parses a frame (its ``_MAX_HEADERS_LENGTH`` and
#: ``_MAX_PAYLOAD_LENGTH``).
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
#: Header names are at most 255 bytes (a 1-byte length); string and byte-array values 65,535.
MAX_HEADER_NAME_LENGTH = 255
MAX_HEADER_VALUE_LENGTH = 65535

#: The HTTP ``Content-Type`` of an event-stream body.
CONTENT_TYPE = "application/vnd.amazon.eventstream"

# Well-known header names.
MESSAGE_TYPE = ":message-type"
EVENT_TYPE = ":event-type"
CONTENT_TYPE_HEADER = ":content-type"
EXCEPTION_TYPE = ":exception-type"
ERROR_CODE = ":error-code"
ERROR_MESSAGE = ":error-message"

_PRELUDE = struct.Struct("!III")
_UINT32 = struct.Struct("!I")


class HeaderType(enum.IntEnum):
    """Header value types (the byte after the header name)."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    SHORT = 3
    INTEGER = 4
    LONG = 5
    BYTE_ARRAY = 6
    STRING = 7
    #: Milliseconds since the Unix epoch, as a signed 64-bit integer.
    TIMESTAMP = 8
    UUID = 9


#: Fixed-size integer types: their struct format.
_INTEGERS = {
    HeaderType.BYTE: struct.Struct("!b"),
    HeaderType.SHORT: struct.Struct("!h"),
    HeaderType.INTEGER: struct.Struct("!i"),
    HeaderType.LONG: struct.Struct("!q"),
    HeaderType.TIMESTAMP: struct.Struct("!q"),
}

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamError(ValueError):
    """Bytes that are not a valid event-stream message, or a message we refuse to encode."""


class ChecksumMismatch(EventStreamError):
    """A prelude or message CRC32 does not match the bytes."""


@dataclass(frozen=True)
class Header:
    """One header: its name, value and wire type.

    Values by type: ``bool`` (BOOL_TRUE/BOOL_FALSE), ``int`` (BYTE, SHORT, INTEGER, LONG,
    TIMESTAMP in epoch milliseconds), ``bytes`` (BYTE_ARRAY), ``str`` (STRING) and
    ``uuid.UUID`` (UUID).
    """

    name: str
    value: HeaderValue
    type: HeaderType = HeaderType.STRING

    @classmethod
    def string(cls, name: str, value: str) -> Header:
        return cls(name, value, HeaderType.STRING)

    @classmethod
    def of(cls, name: str, value: HeaderValue) -> Header:
        """A header typed from its value (an ``int`` is INTEGER; pass ``type`` for the others)."""
        if isinstance(value, bool):
            return cls(name, value, HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE)
        if isinstance(value, int):
            return cls(name, value, HeaderType.INTEGER)
        if isinstance(value, bytes):
            return cls(name, value, HeaderType.BYTE_ARRAY)
        if isinstance(value, uuid.UUID):
            return cls(name, value, HeaderType.UUID)
        return cls(name, value, HeaderType.STRING)


@dataclass(frozen=True)
class Message:
    """One decoded (or to-be-encoded) event-stream message."""

    headers: tuple[Header, ...] = ()
    payload: bytes = b""

    def header(self, name: str) -> HeaderValue | None:
        """The value of header ``name``, or None."""
        for item in self.headers:
            if item.name == name:
                return item.value
        return None

    def header_map(self) -> dict[str, HeaderValue]:
        """All headers as a dict (names are unique in a valid message)."""
        return {item.name: item.value for item in self.headers}

    def encode(self) -> bytes:
        return encode_message(self.headers, self.payload)


# --- encoding ------------------------------------------------------------------------------------


def encode_message(
    headers: Sequence[Header] | Mapping[str, str] = (), payload: bytes = b""
) -> bytes:
    """One message; ``headers`` may be a mapping of string headers."""
    if isinstance(headers, Mapping):
        headers = [Header.string(name, value) for name, value in headers.items()]
    names = [item.name for item in headers]
    if len(set(names)) != len(names):
        raise EventStreamError(f"duplicate header names in {names!r}")
    header_bytes = b"".join(_encode_header(item) for item in headers)
    if len(header_bytes) > MAX_HEADERS_LENGTH:
        raise EventStreamError(
            f"headers are {len(header_bytes)} bytes; the maximum is {MAX_HEADERS_LENGTH}"
        )
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise EventStreamError(
            f"payload is {len(payload)} bytes; the maximum is {MAX_PAYLOAD_LENGTH}"
        )
    total = PRELUDE_LENGTH + len(header_bytes) + len(payload) + MESSAGE_CRC_LENGTH
    lengths = _UINT32.pack(total) + _UINT32.pack(len(header_bytes))
    prelude = lengths + _UINT32.pack(zlib.crc32(lengths))
    crc = zlib.crc32(payload, zlib.crc32(header_bytes, zlib.crc32(prelude)))
    return b"".join((prelude, header_bytes, payload, _UINT32.pack(crc)))


def _encode_header(item: Header) -> bytes:
    name = item.name.encode("utf-8")
    if not 0 < len(name) <= MAX_HEADER_NAME_LENGTH:
        raise EventStreamError(f"header name {item.name!r} must be 1 to 255 bytes of UTF-8")
    return bytes((len(name),)) + name + bytes((item.type,)) + _encode_value(item)


def _encode_value(item: Header) -> bytes:
    kind, value = item.type, item.value
    if kind in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        if value is not (kind is HeaderType.BOOL_TRUE):
            raise EventStreamError(
                f"header {item.name!r}: type {kind.name} needs value {kind is HeaderType.BOOL_TRUE}"
            )
        return b""
    if kind in _INTEGERS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EventStreamError(f"header {item.name!r}: type {kind.name} needs an int")
        try:
            return _INTEGERS[kind].pack(value)
        except struct.error:
            raise EventStreamError(
                f"header {item.name!r}: {value} does not fit type {kind.name}"
            ) from None
    if kind is HeaderType.UUID:
        if not isinstance(value, uuid.UUID):
            raise EventStreamError(f"header {item.name!r}: type UUID needs a uuid.UUID")
        return value.bytes
    if kind is HeaderType.STRING and isinstance(value, str):
        data = value.encode("utf-8")
    elif kind is HeaderType.BYTE_ARRAY and isinstance(value, bytes):
        data = value
    else:
        raise EventStreamError(
            f"header {item.name!r}: type {kind.name} needs "
            f"{'str' if kind is HeaderType.STRING else 'bytes'}, not {type(value).__name__}"
        )
    if len(data) > MAX_HEADER_VALUE_LENGTH:
        raise EventStreamError(f"header {item.name!r}: value is longer than 65,535 bytes")
    return struct.pack("!H", len(data)) + data


# --- decoding ------------------------------------------------------------------------------------


class EventStreamDecoder:
    """Splits a byte stream into messages; feed it bytes in pieces of any size."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet complete a message (0 at a clean end of stream)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return the messages it completes, in order."""
        self._buf += data
        messages = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> Message | None:
        if len(self._buf) < PRELUDE_LENGTH:
            return None
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(self._buf)
        _check_crc("prelude", zlib.crc32(self._buf[:8]), prelude_crc)
        if headers_length > MAX_HEADERS_LENGTH:
            raise EventStreamError(
                f"headers length {headers_length} exceeds the maximum {MAX_HEADERS_LENGTH}"
            )
        payload_length = total - headers_length - PRELUDE_LENGTH - MESSAGE_CRC_LENGTH
        if payload_length < 0:
            raise EventStreamError(
                f"total length {total} is too small for {headers_length} bytes of headers"
            )
        if payload_length > MAX_PAYLOAD_LENGTH:
            raise EventStreamError(
                f"payload length {payload_length} exceeds the maximum {MAX_PAYLOAD_LENGTH}"
            )
        if len(self._buf) < total:
            return None
        frame = bytes(self._buf[:total])
        del self._buf[:total]
        (message_crc,) = _UINT32.unpack_from(frame, total - MESSAGE_CRC_LENGTH)
        _check_crc("message", zlib.crc32(frame[: total - MESSAGE_CRC_LENGTH]), message_crc)
        headers_end = PRELUDE_LENGTH + headers_length
        headers = decode_headers(frame[PRELUDE_LENGTH:headers_end])
        return Message(headers, frame[headers_end : total - MESSAGE_CRC_LENGTH])


def decode_messages(data: bytes) -> list[Message]:
    """Every message in ``data``, which must end on a message boundary."""
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    if decoder.pending:
        raise EventStreamError(f"{decoder.pending} trailing bytes do not form a whole message")
    return messages


def decode_headers(data: bytes) -> tuple[Header, ...]:
    """The headers section of one message."""
    headers: list[Header] = []
    seen: set[str] = set()
    offset = 0
    try:
        while offset < len(data):
            name_length = data[offset]
            name = data[offset + 1 : offset + 1 + name_length].decode("utf-8")
            offset += 1 + name_length
            kind = HeaderType(data[offset])
            value, offset = _decode_value(kind, data, offset + 1)
            if name in seen:
                raise EventStreamError(f"duplicate header {name!r}")
            seen.add(name)
            headers.append(Header(name, value, kind))
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, EventStreamError):
            raise
        raise EventStreamError(f"malformed headers at byte {offset}: {exc}") from None
    return tuple(headers)


def _decode_value(kind: HeaderType, data: bytes, offset: int) -> tuple[HeaderValue, int]:
    if kind in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        return kind is HeaderType.BOOL_TRUE, offset
    if kind in _INTEGERS:
        packer = _INTEGERS[kind]
        return packer.unpack_from(data, offset)[0], offset + packer.size
    if kind is HeaderType.UUID:
        raw = data[offset : offset + 16]
        if len(raw) != 16:
            raise EventStreamError("truncated UUID header value")
        return uuid.UUID(bytes=raw), offset + 16
    (length,) = struct.unpack_from("!H", data, offset)
    raw = data[offset + 2 : offset + 2 + length]
    if len(raw) != length:
        raise EventStreamError(f"truncated {kind.name} header value")
    value = raw.decode("utf-8") if kind is HeaderType.STRING else raw
    return value, offset + 2 + length


def _check_crc(what: str, computed: int, expected: int) -> None:
    if computed != expected:
        raise ChecksumMismatch(
            f"{what} CRC32 mismatch: frame says {expected:#010x}, bytes give {computed:#010x}"
        )


# --- the InvokeWithResponseStream events ------------------------------------------------------

PAYLOAD_CHUNK = "PayloadChunk"
INVOKE_COMPLETE = "InvokeComplete"
_OCTET_STREAM = "application/octet-stream"
_JSON = "application/json"


@dataclass(frozen=True)
class PayloadChunk:
    """Bytes of the function's response, as they were streamed."""

    payload: bytes

    def encode(self) -> bytes:
        return encode_message(_event_headers(PAYLOAD_CHUNK, _OCTET_STREAM), self.payload)


@dataclass(frozen=True)
class InvokeComplete:
    """The end of the stream; ``error_code`` and ``error_details`` are set when the function failed.

    ``log_result`` is base64 of the log tail (``X-Amz-Log-Type: Tail``).  Absent fields are left out
    of the JSON payload, so a clean end is ``{}``.
    """

    error_code: str | None = None
    error_details: str | None = None
    log_result: str | None = None

    def encode(self) -> bytes:
        body: dict[str, str] = {}
        for key, value in (
            ("ErrorCode", self.error_code),
            ("ErrorDetails", self.error_details),
            ("LogResult", self.log_result),
        ):
            if value is not None:
                body[key] = value
        payload = json.dumps(body, separators=(",", ":")).encode()
        return encode_message(_event_headers(INVOKE_COMPLETE, _JSON), payload)


InvokeStreamEvent = PayloadChunk | InvokeComplete


@dataclass(frozen=True)
class StreamException:
    """An error frame (``:message-type`` ``exception`` or ``error``) in place of an event."""

    code: str
    message: str
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)

    def encode(self) -> bytes:
        """An ``error`` frame: ``:error-code`` and ``:error-message`` headers, no payload.

        botocore raises ``EventStreamError`` with this code and message.  (An ``exception`` frame
        names a modelled exception shape, and Lambda's event stream models none, so botocore
        would report it with an empty code and message.)
        """
        headers = (
            Header.string(ERROR_CODE, self.code),
            Header.string(ERROR_MESSAGE, self.message),
            Header.string(MESSAGE_TYPE, "error"),
        )
        return encode_message(headers)


def encode_payload_chunks(data: bytes, max_size: int = MAX_PAYLOAD_LENGTH) -> Iterator[bytes]:
    """``PayloadChunk`` frames carrying ``data``, split so that none exceeds ``max_size`` bytes."""
    if max_size <= 0:
        raise ValueError(f"max_size must be positive, not {max_size}")
    view = memoryview(data)
    for start in range(0, len(data), max_size):
        yield PayloadChunk(bytes(view[start : start + max_size])).encode()


def invoke_stream_event(message: Message) -> InvokeStreamEvent | StreamException:
    """Interpret a decoded message of an ``InvokeWithResponseStream`` body."""
    message_type = message.header(MESSAGE_TYPE)
    if message_type == "exception":
        code = str(message.header(EXCEPTION_TYPE) or "")
        detail = _json_object(message.payload)
        text = detail.get("Message", detail.get("message", ""))
        return StreamException(code, str(text), message.header_map())
    if message_type == "error":
        code = str(message.header(ERROR_CODE) or "")
        return StreamException(code, str(message.header(ERROR_MESSAGE) or ""), message.header_map())
    if message_type != "event":
        raise EventStreamError(f"unknown {MESSAGE_TYPE} {message_type!r}")
    event_type = message.header(EVENT_TYPE)
    if event_type == PAYLOAD_CHUNK:
        return PayloadChunk(message.payload)
    if event_type == INVOKE_COMPLETE:
        body = _json_object(message.payload)
        return InvokeComplete(
            _optional_str(body.get("ErrorCode")),
            _optional_str(body.get("ErrorDetails")),
            _optional_str(body.get("LogResult")),
        )
    raise EventStreamError(f"unknown {EVENT_TYPE} {event_type!r}")


def _event_headers(event_type: str, content_type: str) -> tuple[Header, ...]:
    return (
        Header.string(EVENT_TYPE, event_type),
        Header.string(CONTENT_TYPE_HEADER, content_type),
        Header.string(MESSAGE_TYPE, "event"),
    )


def _json_object(payload: bytes) -> dict[str, object]:
    if not payload:
        return {}
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise EventStreamError(f"event payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EventStreamError(f"event payload is JSON {type(value).__name__}, not an object")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
