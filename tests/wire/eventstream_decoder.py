"""A reader of AWS event-stream frames, for the tests: lambdakit only writes them.

The tests check what lambdakit.wire.eventstream writes two ways: with botocore's parser (what
callers use) and with this decoder, which also names what is wrong with a bad frame.  It is
incremental: :meth:`EventStreamDecoder.feed` it bytes as they arrive and it returns the messages
completed so far; :func:`invoke_stream_event` reads a message of an ``InvokeWithResponseStream``
body as the Lambda event it is.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib

from lambdakit.wire.eventstream import (
    ERROR_CODE,
    ERROR_MESSAGE,
    EVENT_TYPE,
    EXCEPTION_TYPE,
    INTEGER_TYPES,
    INVOKE_COMPLETE,
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    MESSAGE_CRC_LENGTH,
    MESSAGE_TYPE,
    PAYLOAD_CHUNK,
    PRELUDE_LENGTH,
    EventStreamError,
    Header,
    HeaderType,
    HeaderValue,
    InvokeComplete,
    InvokeStreamEvent,
    Message,
    PayloadChunk,
    StreamException,
)

_PRELUDE = struct.Struct("!III")
_UINT32 = struct.Struct("!I")


class ChecksumMismatch(EventStreamError):
    """A prelude or message CRC32 does not match the bytes."""


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
    if kind in INTEGER_TYPES:
        packer = INTEGER_TYPES[kind]
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
