"""Values that cross the HTTP layer's boundary, and the one handler signature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from lambdakit.emulator.values import value


class BodyConsumer(Protocol):
    """Receives a streamed request body as it arrives."""

    def body_chunk(self, data: bytes) -> None: ...

    def body_end(self, trailers: Mapping[str, str]) -> None: ...

    def body_abort(self) -> None:
        """The connection ended before the body did."""
        ...


class Producer(Protocol):
    """The connection a streamed body comes from: paused while its consumer cannot keep up."""

    def pause_producing(self) -> None: ...

    def resume_producing(self) -> None: ...


class BodyStream:
    """A request body delivered after its request was dispatched.

    A runtime streaming its response (``Lambda-Runtime-Function-Response-Mode: streaming``)
    sends a chunked body whose chunks must reach the caller as they arrive, and whose trailers
    may report an error.  The codec feeds this object; the consumer attached with
    :meth:`consume` gets what was buffered so far, then every chunk as it comes.
    """

    __slots__ = ("_chunks", "_consumer", "aborted", "finished", "producer", "size", "trailers")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._consumer: BodyConsumer | None = None
        self.trailers: Mapping[str, str] = {}
        self.finished = False
        self.aborted = False
        self.size = 0
        #: Set by the I/O layer: lets a slow consumer pause the sender.
        self.producer: Producer | None = None

    def pause(self) -> None:
        if self.producer is not None:
            self.producer.pause_producing()

    def resume(self) -> None:
        if self.producer is not None:
            self.producer.resume_producing()

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self._consumer is None:
            self._chunks.append(data)
        else:
            self._consumer.body_chunk(data)

    def finish(self, trailers: Mapping[str, str]) -> None:
        self.finished = True
        self.trailers = trailers
        if self._consumer is not None:
            self._consumer.body_end(trailers)

    def abort(self) -> None:
        self.aborted = True
        if self._consumer is not None:
            self._consumer.body_abort()

    def consume(self, consumer: BodyConsumer) -> None:
        self._consumer = consumer
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            consumer.body_chunk(chunk)
        if self.finished:
            consumer.body_end(self.trailers)
        elif self.aborted:
            consumer.body_abort()


@value
class Request:
    """One complete HTTP request; header and trailer names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    #: Trailer fields sent after a chunked body (Runtime API streaming errors use them).
    trailers: Mapping[str, str] = field(default_factory=dict)
    #: Every value of a header field sent more than once (``headers`` holds the last one).
    repeated_headers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: The body was larger than the server's limit: ``body`` is empty, ``body_size`` counts it.
    body_too_large: bool = False
    body_size: int = 0
    #: Set for requests dispatched before their body arrived (see ``streams`` in the codec).
    stream: BodyStream | None = None
    #: Whether the connection may stay open after this request's response.
    keep_alive: bool = True
    #: An HTTP/1.0 request: a streamed reply is sent unframed and ends with the connection.
    http10: bool = False


@value
class Response:
    """One complete HTTP response; ``Content-Length`` is added by the codec."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    #: Close the connection once this response is written.
    close: bool = False


class ResponseWriter(Protocol):
    """Writes one response piece by piece (``Transfer-Encoding: chunked``)."""

    def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None: ...

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    @property
    def closed(self) -> bool: ...

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Call ``pause`` while the reader falls behind and ``resume`` once it catches up."""
        ...


@dataclass(frozen=True, slots=True)
class Streamed:
    """A reply written piece by piece: ``attach`` is called with the connection's writer."""

    attach: Callable[[ResponseWriter], None]


class Deferred:
    """A response that a later event gives: a long-polled ``GET next``, a caller waiting for its
    invocation.

    :meth:`give` writes it on the connection at once, on the stack of whoever gives it, with no
    future, task or loop iteration in between (the warm path of every invocation has two of
    these).  The connection attaches itself when the handler returns; a response given before
    that is written then.  Once the connection is gone, :attr:`pending` is False and a response
    given is dropped.
    """

    __slots__ = ("_close", "_write", "gone", "response")

    def __init__(self) -> None:
        self.response: Response | None = None
        #: The connection went away, or the giver withdrew (:meth:`cancel`).
        self.gone = False
        self._write: Callable[[Response], None] | None = None
        self._close: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        """Still waiting for its response, on a connection still there."""
        return self.response is None and not self.gone

    def give(self, response: Response) -> None:
        if self.response is not None or self.gone:
            return
        self.response = response
        if self._write is not None:
            self._write(response)

    def cancel(self) -> None:
        """The giver will never answer: the connection is closed without a response."""
        if not self.pending:
            return
        self.gone = True
        if self._close is not None:
            self._close()

    # The connection's side ------------------------------------------------------------------
    def attach(self, write: Callable[[Response], None], close: Callable[[], None]) -> None:
        if self.response is not None:
            write(self.response)
        elif self.gone:
            close()
        else:
            self._write, self._close = write, close

    def drop(self) -> None:
        """The connection is gone."""
        self.gone = True
        self._write = self._close = None


#: What a handler returns: a response now, one a later event gives (:class:`Deferred`, or a
#: future for code that awaits), or a response streamed as it is produced.
Reply: TypeAlias = "Response | Deferred | asyncio.Future[Response] | Streamed"

#: The one handler signature of both servers.
Handler: TypeAlias = Callable[[Request], Reply]
