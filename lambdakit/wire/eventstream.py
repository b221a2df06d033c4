"""AWS event-stream frames (``application/vnd.amazon.eventstream``): encoded, no I/O.

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
so a frame we write, botocore accepts.

The Lambda events are :class:`PayloadChunk` (raw bytes of the function's response) and
:class:`InvokeComplete` (the end of the stream, with the error, if any);
``InvokeWithResponseStreamResponseEvent`` in the Lambda service model (API version 2015-03-31)
defines both.  lambdakit only writes these frames (the Invoke API and the gateway); the tests
read them back with their own decoder (``tests/wire/eventstream_decoder.py``) and with botocore's.
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


#: Fixed-size integer types: their struct (big-endian).
INTEGER_TYPES = {
    HeaderType.BYTE: struct.Struct("!b"),
    HeaderType.SHORT: struct.Struct("!h"),
    HeaderType.INTEGER: struct.Struct("!i"),
    HeaderType.LONG: struct.Struct("!q"),
    HeaderType.TIMESTAMP: struct.Struct("!q"),
}

HeaderValue = bool | int | bytes | str | uuid.UUID


class EventStreamError(ValueError):
    """A message we refuse to encode (a decoder raises it for bytes that are not a message)."""


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
    if kind in INTEGER_TYPES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EventStreamError(f"header {item.name!r}: type {kind.name} needs an int")
        try:
            return INTEGER_TYPES[kind].pack(value)
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


def _event_headers(event_type: str, content_type: str) -> tuple[Header, ...]:
    return (
        Header.string(EVENT_TYPE, event_type),
        Header.string(CONTENT_TYPE_HEADER, content_type),
        Header.string(MESSAGE_TYPE, "event"),
    )
