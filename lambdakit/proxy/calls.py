"""What passes through a Runtime API proxy: calls from the runtime, replies from upstream.

A :class:`Call` is one request a runtime made (``GET next``, ``POST …/response`` and so on),
classified once by :func:`classify`; a :class:`Reply` is the answer to it.  Both are frozen: a
hook that wants to change one makes a new one with :func:`dataclasses.replace` (or the
``with_*`` helpers), and the proxy forwards the original bytes untouched whenever it gets back
the very object it handed out.  Paths and headers are those of the Runtime API page,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html, spelled in :mod:`lambdakit.wire`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from lambdakit.wire import headers as h
from lambdakit.wire import paths
from lambdakit.wire.http1 import (
    EndOfMessage,
    Headers,
    Parser,
    ProtocolError,
    ResponseHead,
    encode_request_head,
    encode_response_head,
    header,
    without_framing,
)


class CallKind(enum.Enum):
    # Hashed by identity (members are singletons): hooks are looked up by kind on every call.
    __hash__ = object.__hash__

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


class ForwardedBody:
    """A request body that is still arriving (a streamed response): ``for chunk in stream``.

    Each chunk is read from the runtime's connection when the consumer asks for it, so the
    proxy never buffers a stream, and a slow upstream slows the runtime down through TCP flow
    control.  :attr:`trailers` is set once iteration has ended.  A stream is iterated once.
    ``pull`` returns the next chunk, or the :class:`~lambdakit.wire.http1.EndOfMessage` that
    carries the trailers.
    """

    def __init__(self, pull: Callable[[], bytes | EndOfMessage]) -> None:
        self._pull = pull
        self._done = False
        self._trailers: Headers = ()

    @classmethod
    def of(cls, chunks: Iterable[bytes], trailers: Headers = ()) -> ForwardedBody:
        """A stream of ``chunks`` already in memory (for hooks that make one up, and tests)."""
        pending = iter(chunks)
        end = EndOfMessage(trailers)
        return cls(lambda: next(pending, end))

    @property
    def trailers(self) -> Headers:
        """The trailer fields; complete once iteration has ended."""
        return self._trailers

    @property
    def done(self) -> bool:
        """Iteration has ended: the whole body went past."""
        return self._done

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        item = self._pull()
        if isinstance(item, EndOfMessage):
            self._trailers = item.trailers
            self._done = True
            raise StopIteration
        return item


class RecordingStream(ForwardedBody):
    """Passes ``source``'s chunks on and keeps a copy of the first ``limit`` bytes."""

    def __init__(self, source: ForwardedBody, limit: int) -> None:
        super().__init__(self._take)
        self._source = source
        self._limit = limit
        self.recorded: list[bytes] = []
        #: Bytes seen so far (the copy stops at ``limit``).
        self.size = 0

    def _take(self) -> bytes | EndOfMessage:
        chunk = next(self._source, None)
        if chunk is None:
            return EndOfMessage(self._source.trailers)
        room = self._limit - self.size
        if room > 0:
            self.recorded.append(chunk[:room] if room < len(chunk) else chunk)
        self.size += len(chunk)
        return chunk

    @property
    def truncated(self) -> bool:
        return self.size > self._limit


Body = bytes | ForwardedBody


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
        return isinstance(self.body, ForwardedBody)

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


#: A reply as the fast lane passes it on: its bytes, status, and for a ``next`` reply the
#: request id and deadline (ms since the epoch) it delivered ("" and 0 otherwise).
Relayed = tuple[bytes, int, str, int]


def deadline_of(reply: Reply) -> int:
    """A ``next`` reply's deadline (``Lambda-Runtime-Deadline-Ms``), or 0."""
    value = reply.header(h.DEADLINE_MS) or ""
    return int(value) if value.isdigit() else 0


@dataclass(frozen=True, slots=True)
class ProxiedInvocation:
    """The event a ``GET next`` reply delivered, with its context headers."""

    request_id: str
    deadline_ms: int
    function_arn: str
    event: bytes
    headers: Headers

    @classmethod
    def from_reply(cls, reply: Reply) -> ProxiedInvocation | None:
        """The invocation in a successful ``next`` reply; None for anything else."""
        request_id = reply.header(h.REQUEST_ID)
        if reply.status != 200 or not request_id:
            return None
        return cls(
            request_id,
            deadline_of(reply),
            reply.header(h.INVOKED_FUNCTION_ARN) or "",
            reply.body,
            reply.headers,
        )

    @classmethod
    def from_raw(cls, raw: bytes) -> ProxiedInvocation | None:
        """The invocation in a ``next`` reply as received (head and body, whole)."""
        try:
            events = Parser(server=False).feed(raw)
        except ProtocolError:
            return None
        if not events or type(events[0]) is not ResponseHead:
            return None
        status, reason, fields, _head, _ = events[0]
        body = b"".join(event for event in events if type(event) is bytes)
        return cls.from_reply(Reply(status, reason, fields, body, raw))


@dataclass(frozen=True, slots=True)
class Result:
    """An invocation's result, once the Runtime API accepted it (what ``Hooks.on_result`` gets).

    ``kind`` is RESPONSE or ERROR (a streamed response that ended with an error trailer is an
    ERROR); ``body`` the response or error document (of a streamed response, what the proxy
    kept of it: ``Hooks.result_limit`` bytes); ``delivery`` the ``next`` reply that delivered
    the invocation, as received (b"" if this proxy did not see it).
    """

    kind: CallKind
    request_id: str
    body: bytes
    delivery: bytes = field(default=b"", repr=False)

    def invocation(self) -> ProxiedInvocation:
        """The invocation this is the result of (request id only, if its ``next`` was not seen)."""
        found = ProxiedInvocation.from_raw(self.delivery) if self.delivery else None
        return found or ProxiedInvocation(self.request_id, 0, "", b"", ())


def streamed_result(request_id: str, stream: RecordingStream, delivery: bytes) -> Result:
    """The result of a streamed response that went past ``stream``."""
    body = b"".join(stream.recorded)
    if streamed_error_type(stream.trailers):
        return Result(
            CallKind.ERROR, request_id, streamed_error_body(stream.trailers) or body, delivery
        )
    return Result(CallKind.RESPONSE, request_id, body, delivery)


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


# Encoding ---------------------------------------------------------------------------------------
def encode_call(call: Call, as_received: bool) -> bytes:
    """A call with a buffered body, ready to send: as received when ``as_received`` allows."""
    assert isinstance(call.body, bytes)
    if as_received and call.raw_head:
        return call.raw_head + call.body
    fields = [(n, v) for n, v in without_framing(call.headers) if n != h.EXPECT]
    if call.body or call.method not in ("GET", "HEAD"):
        fields.append((h.CONTENT_LENGTH, str(len(call.body))))
    return encode_request_head(call.method, call.target, fields) + call.body


def encode_stream_head(call: Call, as_received: bool) -> bytes:
    """The head of a call whose body streams (chunked), as received when ``as_received``."""
    if as_received and call.raw_head:
        return call.raw_head
    fields = [(n, v) for n, v in without_framing(call.headers) if n != h.EXPECT]
    fields.append((h.TRANSFER_ENCODING, "chunked"))
    return encode_request_head(call.method, call.target, fields)


def encode_reply(reply: Reply, as_received: bool) -> bytes:
    """A reply, ready to send: the bytes upstream sent when ``as_received`` allows."""
    if as_received and reply.raw:
        return reply.raw
    fields = without_framing(reply.headers)
    fields.append((h.CONTENT_LENGTH, str(len(reply.body))))
    return encode_response_head(reply.status, reply.reason, fields) + reply.body
