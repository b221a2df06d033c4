"""What passes through a Runtime API proxy: calls from the runtime, replies from upstream.

A :class:`Call` is one request a runtime made (``GET next``, ``POST …/response`` and so on),
classified once by :func:`classify`; a :class:`Reply` is the answer to it.  Both are frozen: a
hook that wants to change one makes a new one with :func:`dataclasses.replace` (or the
``with_*`` helpers), and the proxy forwards the original bytes untouched whenever it gets back
the very object it handed out.  Paths and headers are those of the Runtime API page,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html, spelled in :mod:`lambdakit.wire`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from lambdakit.proxy.http1 import Headers, header
from lambdakit.wire import headers as h
from lambdakit.wire import paths


class CallKind(enum.Enum):
    #: ``GET /runtime/invocation/next``: the runtime asks for an event.
    NEXT = "next"
    #: ``POST /runtime/invocation/{id}/response``, buffered or streamed.
    RESPONSE = "response"
    #: ``POST /runtime/invocation/{id}/error``.
    ERROR = "error"
    #: ``POST /runtime/init/error``.
    INIT_ERROR = "init-error"
    #: Anything else (ping, Extensions and Telemetry APIs): passed through, no hook.
    OTHER = "other"


def classify(method: str, target: str) -> tuple[CallKind, str]:
    """The kind of a Runtime API request and its request id ("" when it has none)."""
    path = target.partition("?")[0]
    if path.startswith(paths.RUNTIME_INVOCATION_PREFIX):
        if path == paths.RUNTIME_NEXT:
            return (CallKind.NEXT, "") if method == "GET" else (CallKind.OTHER, "")
        if method == "POST":
            request_id, _, action = path[len(paths.RUNTIME_INVOCATION_PREFIX) :].partition("/")
            if "/" + action == paths.RESPONSE_SUFFIX:
                return CallKind.RESPONSE, request_id
            if "/" + action == paths.ERROR_SUFFIX:
                return CallKind.ERROR, request_id
    elif path == paths.RUNTIME_INIT_ERROR and method == "POST":
        return CallKind.INIT_ERROR, ""
    return CallKind.OTHER, ""


class BodyStream:
    """A request body that is still arriving (a streamed response): ``async for chunk in it``.

    The proxy feeds it from the runtime's connection and pauses reading from that connection
    while more than :attr:`HIGH_WATER` bytes wait here, so a slow consumer never makes the proxy
    buffer a whole stream.  :attr:`trailers` is set once iteration has ended.
    """

    HIGH_WATER = 256 * 1024

    def __init__(
        self, pause: Callable[[], None] = lambda: None, resume: Callable[[], None] = lambda: None
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._paused = False
        self._pause = pause
        self._resume = resume
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._trailers: Headers = ()

    @property
    def trailers(self) -> Headers:
        """The trailer fields; complete once iteration has ended."""
        return self._trailers

    # producer side (the proxy) ------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._queued += len(chunk)
        if self._queued > self.HIGH_WATER and not self._paused:
            self._paused = True
            self._pause()
        self._wake()

    def finish(self, trailers: Headers = ()) -> None:
        self._trailers = trailers
        self._done = True
        self._wake()

    def abort(self, error: BaseException) -> None:
        """The runtime's connection failed before the body ended."""
        if not self._done:
            self._error = error
            self._done = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # consumer side -------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._queued -= len(chunk)
        if self._paused and self._queued <= self.HIGH_WATER // 4:
            self._paused = False
            self._resume()
        return chunk


class RecordingStream(BodyStream):
    """Passes ``source``'s chunks on and keeps a copy of the first ``limit`` bytes."""

    def __init__(self, source: BodyStream, limit: int) -> None:
        super().__init__()
        self._source = source
        self._limit = limit
        self.recorded: list[bytes] = []
        #: Bytes seen so far (the copy stops at ``limit``).
        self.size = 0

    async def __anext__(self) -> bytes:
        chunk = await self._source.__anext__()
        room = self._limit - self.size
        if room > 0:
            self.recorded.append(chunk[:room] if room < len(chunk) else chunk)
        self.size += len(chunk)
        return chunk

    @property
    def trailers(self) -> Headers:
        return self._source.trailers

    @property
    def truncated(self) -> bool:
        return self.size > self._limit


Body = bytes | BodyStream


@dataclass(frozen=True, slots=True)
class Call:
    """One request from the runtime."""

    kind: CallKind
    method: str
    target: str
    headers: Headers
    body: Body = b""
    #: The invocation this call is about (``…/{id}/response`` and ``…/{id}/error``).
    request_id: str = ""
    #: The request head as received; emptied by the ``with_*`` helpers (it must be re-encoded).
    raw_head: bytes = field(default=b"", repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """A header's value by lower-case name (``lambdakit.wire.headers`` spells them)."""
        return header(self.headers, name)

    @property
    def streaming(self) -> bool:
        """A streamed response: the body arrives while the call is forwarded."""
        return isinstance(self.body, BodyStream)

    def with_body(self, body: Body) -> Call:
        return replace(self, body=body, raw_head=b"")

    def with_headers(self, fields: Headers) -> Call:
        return replace(self, headers=fields, raw_head=b"")


@dataclass(frozen=True, slots=True)
class Reply:
    """Upstream's answer to a call (bodies are always buffered: they are small)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    #: The whole reply as received, head and body; empty when it must be re-encoded.
    raw: bytes = field(default=b"", repr=False, compare=False)

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def with_body(self, body: bytes) -> Reply:
        return replace(self, body=body, raw=b"")

    @classmethod
    def json(cls, status: int, document: object, reason: str = "") -> Reply:
        """A reply made up by a hook (for example to refuse a call without forwarding it)."""
        body = json.dumps(document).encode()
        return cls(status, reason or _REASONS.get(status, "Unknown"), _JSON, body)


_JSON: Headers = ((h.CONTENT_TYPE, h.JSON_CONTENT_TYPE),)
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}


@dataclass(frozen=True, slots=True)
class Invocation:
    """The event a ``GET next`` reply delivered, with its context headers."""

    request_id: str
    deadline_ms: int
    function_arn: str
    event: bytes
    headers: Headers

    @classmethod
    def from_reply(cls, reply: Reply) -> Invocation | None:
        """The invocation in a successful ``next`` reply; None for anything else."""
        request_id = reply.header(h.REQUEST_ID)
        if reply.status != 200 or not request_id:
            return None
        deadline = reply.header(h.DEADLINE_MS) or ""
        return cls(
            request_id,
            int(deadline) if deadline.isdigit() else 0,
            reply.header(h.INVOKED_FUNCTION_ARN) or "",
            reply.body,
            reply.headers,
        )


def streamed_error_type(trailers: Headers) -> str | None:
    """The error type a streamed response ended with (``Lambda-Runtime-Function-Error-Type``)."""
    return header(trailers, h.FUNCTION_ERROR_TYPE) or None


def streamed_error_body(trailers: Headers) -> bytes:
    """The decoded ``Lambda-Runtime-Function-Error-Body`` trailer (base64), or b""."""
    encoded = header(trailers, h.FUNCTION_ERROR_BODY) or ""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""
