"""Values that cross the HTTP layer's boundary, and the one handler signature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Request:
    """One complete HTTP request; header and trailer names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    #: Trailer fields sent after a chunked body (Runtime API streaming errors use them).
    trailers: Mapping[str, str] = field(default_factory=dict)
    #: The body was larger than the server's limit: ``body`` is empty, ``body_size`` counts it.
    body_too_large: bool = False
    body_size: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    """One complete HTTP response; ``Content-Length`` is added by the codec."""

    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    #: Close the connection once this response is written.
    close: bool = False


#: What a handler returns: a response now, or a future that a later event resolves
#: (a long-polled ``GET next``, an invocation waiting for its runtime).
Reply: TypeAlias = "Response | asyncio.Future[Response]"

#: The one handler signature of both servers.
Handler: TypeAlias = Callable[[Request], Reply]
