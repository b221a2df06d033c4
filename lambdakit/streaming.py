"""Response streaming for Python handlers run by ``python -m lambdakit.runtime``.

Two styles (docs/streaming.md):

- **Generator**: a handler that is a generator (or async generator) function streams what it
  yields, ``bytes`` or ``str`` (sent as UTF-8).  It needs nothing from this module, except to
  answer a Function URL with a status and headers: yield an :class:`HttpPrelude` first.
- **Writer**: ``@streamify_response`` on ``def handler(event, response_stream, context)`` (or
  ``async def``); the handler calls ``response_stream.write(...)``, and may set the content type
  or an HTTP prelude before its first write.

Every write reaches the Runtime API at once, as one HTTP chunk: nothing is buffered.  An
exception before the first byte is an ordinary invocation error; after it, the runtime ends the
stream with the ``Lambda-Runtime-Function-Error-*`` trailers, which the caller sees in
``InvokeComplete``.

This module is standard library only and cheap to import: a handler module imports it during
init, on the cold-start path.
"""

from __future__ import annotations

import _thread

from lambdakit.runtime import fastjson
from lambdakit.wire import headers as h

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Protocol

    from lambdakit.runtime.context import LambdaContext

    class ChunkSink(Protocol):
        """Where a started stream's bytes go: the runtime's chunked ``/response`` upload."""

        def write(self, data: bytes) -> None: ...
        def finish(self, trailers: Sequence[tuple[str, str]]) -> None: ...

    #: Called once, at the first byte, with the content type; returns the sink.
    Opener = Callable[[str], ChunkSink]

__all__ = [
    "HttpPrelude",
    "ResponseStream",
    "StreamingResponse",
    "streamify_response",
]

#: What ``write`` accepts besides ``str``.
_BYTES_TYPES = (bytes, bytearray, memoryview)


class HttpPrelude:
    """The status, headers and cookies of a streamed Function URL response. Immutable.

    On the wire it is JSON, then 8 NUL bytes, at the start of the body, with the content type
    ``application/vnd.awslambda.http-integration-response``.  ``headers`` should include the
    ``content-type`` the HTTP client is to see.
    """

    __slots__ = ("cookies", "headers", "status_code")

    status_code: int
    headers: dict[str, str]
    cookies: list[str]

    def __init__(
        self,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        cookies: Sequence[str] | None = None,
    ) -> None:
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
        if not 100 <= status_code <= 599:
            raise ValueError(f"status_code must be 100 to 599, not {status_code}")
        if isinstance(cookies, str):
            raise TypeError("cookies must be a list of Set-Cookie values, not a str")
        object.__setattr__(self, "status_code", status_code)
        object.__setattr__(self, "headers", {str(k): str(v) for k, v in (headers or {}).items()})
        object.__setattr__(self, "cookies", [str(c) for c in cookies or ()])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"HttpPrelude is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HttpPrelude):
            return NotImplemented
        return (self.status_code, self.headers, self.cookies) == (
            other.status_code,
            other.headers,
            other.cookies,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"HttpPrelude({self.status_code}, headers={self.headers!r}, cookies={self.cookies!r})"
        )

    def encode(self) -> bytes:
        """``{"statusCode": ..., "headers": {...}, "cookies": [...]}`` and the 8-NUL delimiter."""
        prelude = {"statusCode": self.status_code, "headers": self.headers, "cookies": self.cookies}
        return fastjson.dumps(prelude).encode() + h.HTTP_INTEGRATION_DELIMITER


class ResponseStream:
    """The writer a ``@streamify_response`` handler gets (and what a generator's output goes to).

    Nothing is sent until the first non-empty write: until then the content type and the HTTP
    prelude may still change, and an exception is still an ordinary invocation error.  Writes are
    sent at once, one HTTP chunk each.  ``close()`` ends the response for the caller, even if the
    handler goes on running.  Safe to write from several threads (writes are serialized).
    """

    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._sink: ChunkSink | None = None
        self._content_type = h.STREAM_CONTENT_TYPE
        self._prelude = b""
        self._closed = False
        self._lock = _thread.allocate_lock()

    @property
    def content_type(self) -> str:
        return self._content_type

    @property
    def started(self) -> bool:
        """True once the response has begun (its first byte was sent, or it was closed)."""
        return self._sink is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def set_content_type(self, content_type: str) -> None:
        """The response's ``Content-Type`` (default ``application/octet-stream``)."""
        self._check_not_started("set the content type")
        if not content_type or any(c in content_type for c in "\r\n"):
            raise ValueError(f"invalid content type {content_type!r}")
        self._content_type = content_type
        self._prelude = b""

    def set_http_prelude(
        self,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        cookies: Sequence[str] | None = None,
    ) -> None:
        """Answer a Function URL with this status, these headers and cookies, then the body.

        Sets the content type to ``application/vnd.awslambda.http-integration-response``; the
        prelude goes out with the first write (or at ``close()`` if nothing is written).
        """
        self.set_prelude(HttpPrelude(status_code, headers, cookies))

    def set_prelude(self, prelude: HttpPrelude) -> None:
        """:meth:`set_http_prelude` with a ready :class:`HttpPrelude`."""
        self._check_not_started("set the HTTP prelude")
        self._content_type = h.HTTP_INTEGRATION_CONTENT_TYPE
        self._prelude = prelude.encode()

    def write(self, data: bytes | bytearray | memoryview | str) -> int:
        """Send ``data`` now (``str`` as UTF-8); returns its length, as ``io`` writers do."""
        if isinstance(data, str):
            raw = data.encode("utf-8")
        elif isinstance(data, _BYTES_TYPES):
            raw = bytes(data)
        else:
            raise TypeError(f"write() argument must be bytes or str, not {type(data).__name__}")
        if raw:
            with self._lock:
                if self._closed:
                    raise ValueError("write to a closed response stream")
                self._start().write(self._take_prelude() + raw)
        return len(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview | str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing to do: every write is sent at once."""

    def close(self) -> None:
        """End the response (idempotent); the caller gets it complete, even if the handler
        keeps running."""
        self._finish(())

    def _finish(self, trailers: Sequence[tuple[str, str]]) -> None:
        """End the response with ``trailers`` (the runtime's error trailers, or none)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sink = self._start()
            if prelude := self._take_prelude():
                sink.write(prelude)
            sink.finish(trailers)

    def _start(self) -> ChunkSink:
        """Open the response (at the first byte)."""
        if self._sink is None:
            self._sink = self._opener(self._content_type)
        return self._sink

    def _take_prelude(self) -> bytes:
        """The HTTP prelude if it has not been sent yet: it goes out with the first bytes."""
        prelude, self._prelude = self._prelude, b""
        return prelude

    def _check_not_started(self, what: str) -> None:
        if self._sink is not None or self._closed:
            raise ValueError(f"cannot {what} after the response has started")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "started" if self._sink else "not started"
        return f"ResponseStream({self._content_type!r}, {state})"


class StreamingResponse:
    """What a ``@streamify_response`` handler returns to the runtime: the call still to make.

    The runtime recognizes it and calls ``handler(event, response_stream, context)`` itself,
    with a :class:`ResponseStream` bound to the ``/response`` request.
    """

    __slots__ = ("context", "event", "handler")

    def __init__(
        self, handler: Callable[..., object], event: object, context: LambdaContext | None
    ) -> None:
        self.handler = handler
        self.event = event
        self.context = context

    def __repr__(self) -> str:
        return f"StreamingResponse({getattr(self.handler, '__qualname__', self.handler)!r})"


def streamify_response(handler: Callable[..., object]) -> Callable[..., StreamingResponse]:
    """Turn ``handler(event, response_stream, context)`` into a streaming Lambda handler.

    The handler may be ``async def``.  Its return value is ignored: the response is what it
    writes.  Runs under ``python -m lambdakit.runtime`` (other runtimes cannot stream Python).
    """

    def streaming_handler(event: object, context: LambdaContext | None) -> StreamingResponse:
        return StreamingResponse(handler, event, context)

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        if hasattr(handler, name):
            setattr(streaming_handler, name, getattr(handler, name))
    streaming_handler.__wrapped__ = handler  # type: ignore[attr-defined]
    return streaming_handler
