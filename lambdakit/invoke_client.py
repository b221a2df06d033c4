"""The Invoke API as ``lambdakit invoke`` calls it: one request with ``http.client``, stdlib only.

Theory of operation.  ``Invoke`` (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html)
is ``POST /2015-03-31/functions/NAME/invocations`` with the payload as the body and
``X-Amz-Invocation-Type`` / ``X-Amz-Log-Type`` headers; the answer is the function's payload,
``X-Amz-Function-Error`` when the function failed, ``X-Amz-Log-Result`` (base64 of the last 4 KB
of the log) when ``Tail`` was asked, or a service error: a non-2xx status, ``x-amzn-ErrorType``
and a JSON body with a ``message``.  ``InvokeWithResponseStream``
(https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html) is
``POST /2021-11-15/functions/NAME/response-streaming-invocations``, answered with an
``application/vnd.amazon.eventstream`` body: ``PayloadChunk`` events carrying the response as the
function writes it, then one ``InvokeComplete`` (``ErrorCode``, ``ErrorDetails``, ``LogResult``).

:class:`FrameReader` splits that body into frames as bytes arrive.  lambdakit's wire package
only writes frames, and the tests keep their own full decoder (``tests/wire/``) so that they check
the writer independently; this reader is the small part a caller needs (the frame layout of
:mod:`lambdakit.wire.eventstream`, both CRCs checked, every header type skipped correctly), kept
next to its one user.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import struct
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from lambdakit.wire import eventstream, headers, limits, paths

#: Seconds to wait for an answer: the longest a function may run, and a margin.
READ_TIMEOUT = limits.MAX_TIMEOUT + 60.0


class Unreachable(Exception):
    """Nothing answers at the endpoint (the message says what happened, in one line)."""


class ServiceError(Exception):
    """The Invoke API refused the request: ``status``, ``error_type`` and its message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{error_type or f'HTTP {status}'}: {message}".rstrip(": "))
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True)
class Endpoint:
    """Where a ``lambdakit serve`` (or any Invoke API) listens."""

    host: str
    port: int
    https: bool
    url: str

    @classmethod
    def parse(cls, url: str, flag: str = "--endpoint") -> Endpoint:
        """``http://HOST[:PORT]``; ValueError naming ``flag`` otherwise."""
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{flag}: expected http://HOST[:PORT], got {url!r}")
        if parsed.path not in ("", "/") or parsed.query:
            raise ValueError(f"{flag}: expected http://HOST[:PORT] without a path, got {url!r}")
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None
        shown = f"{parsed.scheme}://{parsed.netloc}"
        return cls(parsed.hostname, port, parsed.scheme == "https", shown)


@dataclass(frozen=True)
class Reply:
    """What an invocation answered."""

    status: int
    payload: bytes
    request_id: str
    #: ``Unhandled`` (or the streamed ``ErrorCode``) when the function failed; "" otherwise.
    function_error: str
    #: A streamed invocation's ``ErrorDetails`` (a plain one's error is its payload).
    error_details: str
    #: The decoded log tail (Lambda's form: a record's lines joined with ``\\r``); "" if none.
    log_tail: str


def invoke(
    endpoint: Endpoint,
    name: str,
    payload: bytes,
    invocation_type: str = headers.REQUEST_RESPONSE,
    log_tail: bool = False,
) -> Reply:
    """One ``Invoke``; raises :class:`Unreachable` or :class:`ServiceError`."""
    sent = _request_headers(invocation_type, log_tail)
    connection = _connect(endpoint)
    try:
        response = _post(connection, endpoint, _function_path(paths.invoke, name), payload, sent)
        body = _read(response, endpoint)
        if response.status >= 300:
            raise _service_error(response, body)
        return Reply(
            status=response.status,
            payload=body,
            request_id=response.getheader(headers.AMZN_REQUEST_ID, ""),
            function_error=response.getheader(headers.FUNCTION_ERROR, ""),
            error_details="",
            log_tail=_decode_tail(response.getheader(headers.LOG_RESULT, "")),
        )
    finally:
        connection.close()


def invoke_stream(
    endpoint: Endpoint,
    name: str,
    payload: bytes,
    on_chunk: Callable[[bytes], None],
    log_tail: bool = False,
) -> Reply:
    """One ``InvokeWithResponseStream``: each ``PayloadChunk`` to ``on_chunk`` as it arrives.

    The returned reply's payload is empty (the chunks went to ``on_chunk``); its
    ``function_error`` and ``log_tail`` come from ``InvokeComplete``.
    """
    sent = _request_headers(headers.REQUEST_RESPONSE, log_tail)
    connection = _connect(endpoint)
    try:
        path = _function_path(_streaming_path, name)
        response = _post(connection, endpoint, path, payload, sent)
        if response.status >= 300:
            raise _service_error(response, _read(response, endpoint))
        request_id = response.getheader(headers.AMZN_REQUEST_ID, "")
        reader = FrameReader()
        complete: dict[str, str] | None = None
        while complete is None:
            try:
                data = response.read1(65536)
            except (OSError, http.client.HTTPException) as exc:
                raise ServiceError(response.status, "", f"the stream broke: {exc}") from None
            if not data:
                raise ServiceError(response.status, "", "the stream ended without InvokeComplete")
            for frame in reader.feed(data):
                complete = _stream_event(frame, on_chunk, response.status)
                if complete is not None:
                    break
        return Reply(
            status=response.status,
            payload=b"",
            request_id=request_id,
            function_error=complete.get("ErrorCode", ""),
            error_details=complete.get("ErrorDetails", ""),
            log_tail=_decode_tail(complete.get("LogResult", "")),
        )
    finally:
        connection.close()


def _stream_event(
    frame: Frame, on_chunk: Callable[[bytes], None], status: int
) -> dict[str, str] | None:
    """Deliver a ``PayloadChunk``; the fields of ``InvokeComplete``; raise on an error frame."""
    kind = frame.headers.get(eventstream.MESSAGE_TYPE, "event")
    if kind != "event":
        code = frame.headers.get(eventstream.ERROR_CODE) or frame.headers.get(
            eventstream.EXCEPTION_TYPE, ""
        )
        message = frame.headers.get(eventstream.ERROR_MESSAGE) or frame.payload.decode(
            "utf-8", "replace"
        )
        raise ServiceError(status, str(code), str(message))
    event = frame.headers.get(eventstream.EVENT_TYPE)
    if event == eventstream.PAYLOAD_CHUNK:
        on_chunk(frame.payload)
        return None
    if event == eventstream.INVOKE_COMPLETE:
        try:
            fields = json.loads(frame.payload or b"{}")
        except ValueError:
            fields = {}
        return {k: str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    return None  # an event this version does not know: skipped, as the SDKs do


def _streaming_path(name: str) -> str:
    return paths.STREAMING_INVOKE_PREFIX + name + paths.STREAMING_INVOKE_SUFFIX


def _function_path(path_of: Callable[[str], str], name: str) -> str:
    return path_of(urllib.parse.quote(name, safe=":"))


def _request_headers(invocation_type: str, log_tail: bool) -> dict[str, str]:
    sent = {"Content-Type": headers.JSON_CONTENT_TYPE, "X-Amz-Invocation-Type": invocation_type}
    if log_tail:
        sent["X-Amz-Log-Type"] = "Tail"
    return sent


def _connect(endpoint: Endpoint) -> http.client.HTTPConnection:
    kind = http.client.HTTPSConnection if endpoint.https else http.client.HTTPConnection
    return kind(endpoint.host, endpoint.port, timeout=READ_TIMEOUT)


def _post(
    connection: http.client.HTTPConnection,
    endpoint: Endpoint,
    path: str,
    payload: bytes,
    sent: dict[str, str],
) -> http.client.HTTPResponse:
    try:
        connection.request("POST", path, payload, sent)
        return connection.getresponse()
    except ConnectionRefusedError:
        raise Unreachable(f"nothing listens at {endpoint.url} (connection refused)") from None
    except socket.gaierror as exc:
        raise Unreachable(f"cannot resolve {endpoint.host}: {exc.strerror}") from None
    except TimeoutError:
        raise Unreachable(f"no answer from {endpoint.url} in {READ_TIMEOUT:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"{endpoint.url}: {exc or type(exc).__name__}") from None


def _read(response: http.client.HTTPResponse, endpoint: Endpoint) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"{endpoint.url}: the answer broke off: {exc}") from None


def _service_error(response: http.client.HTTPResponse, body: bytes) -> ServiceError:
    error_type = response.getheader(headers.ERROR_TYPE, "")
    try:
        document = json.loads(body)
        message = str(document.get("message") or document.get("Message") or "")
        error_type = error_type or str(document.get("Type") or document.get("__type") or "")
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace").strip()
    return ServiceError(response.status, error_type, message)


def _decode_tail(value: str) -> str:
    if not value:
        return ""
    try:
        return base64.b64decode(value).decode("utf-8", "replace")
    except ValueError:
        return ""


# --- event-stream frames -------------------------------------------------------------------------
_PRELUDE = struct.Struct("!III")
_UINT32 = struct.Struct("!I")
#: Bytes of a header value of each fixed-size type (the rest carry a 2-byte length).
_FIXED_SIZES = {
    eventstream.HeaderType.BOOL_TRUE: 0,
    eventstream.HeaderType.BOOL_FALSE: 0,
    eventstream.HeaderType.UUID: 16,
    **{kind: layout.size for kind, layout in eventstream.INTEGER_TYPES.items()},
}


@dataclass(frozen=True)
class Frame:
    """One event-stream message: its string headers (others are skipped) and payload."""

    headers: dict[str, str]
    payload: bytes


class FrameReader:
    """Splits an event-stream body into frames; :meth:`feed` it bytes in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; the frames it completes, in order (``EventStreamError`` if corrupt)."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= eventstream.PRELUDE_LENGTH:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise eventstream.EventStreamError("event-stream prelude CRC mismatch")
            if headers_length > eventstream.MAX_HEADERS_LENGTH or total > (
                eventstream.PRELUDE_LENGTH
                + eventstream.MAX_HEADERS_LENGTH
                + eventstream.MAX_PAYLOAD_LENGTH
                + eventstream.MESSAGE_CRC_LENGTH
            ):
                raise eventstream.EventStreamError(f"event-stream frame of {total} bytes")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            end = total - eventstream.MESSAGE_CRC_LENGTH
            if zlib.crc32(frame[:end]) != _UINT32.unpack_from(frame, end)[0]:
                raise eventstream.EventStreamError("event-stream message CRC mismatch")
            start = eventstream.PRELUDE_LENGTH
            frames.append(
                Frame(
                    _string_headers(frame[start : start + headers_length]),
                    frame[start + headers_length : end],
                )
            )
        return frames


def _string_headers(data: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    offset = 0
    try:
        while offset < len(data):
            name_end = offset + 1 + data[offset]
            name = data[offset + 1 : name_end].decode("utf-8")
            kind = eventstream.HeaderType(data[name_end])
            offset = name_end + 1
            if kind in _FIXED_SIZES:
                offset += _FIXED_SIZES[kind]
                continue
            (length,) = struct.unpack_from("!H", data, offset)
            value = data[offset + 2 : offset + 2 + length]
            offset += 2 + length
            if kind is eventstream.HeaderType.STRING:
                found[name] = value.decode("utf-8", "replace")
    except (IndexError, ValueError, struct.error):
        raise eventstream.EventStreamError("malformed event-stream headers") from None
    return found
