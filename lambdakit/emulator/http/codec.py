"""HTTP/1.1 framing without I/O: bytes in, :class:`Request` out; :class:`Response` in, bytes out.

Parsing is httptools' (llhttp): it reads chunked bodies and reports trailer fields as header
callbacks that arrive after the last body chunk and before the message completes (RFC 9112
§7.1.2), which is how the Runtime API's streaming error trailers reach us.
"""

from __future__ import annotations

from collections import deque
from http import HTTPStatus

import httptools

from lambdakit.emulator.http.messages import Request, Response


class ProtocolError(Exception):
    """The peer sent bytes that are not HTTP/1.1; the connection must be closed."""


class RequestReader:
    """Feeds bytes to the parser and collects complete requests, in order."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self.requests: deque[Request] = deque()
        # Per-request state, reset by on_message_begin.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._trailers: dict[str, str] = {}
        self._in_trailers = False
        self._body: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Parse ``data``; complete requests are appended to :attr:`requests`."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            raise ProtocolError("protocol upgrades are not supported") from exc
        except httptools.HttpParserError as exc:
            raise ProtocolError(str(exc)) from exc

    # httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._trailers = {}
        self._in_trailers = False
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        target = self._trailers if self._in_trailers else self._headers
        target[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._in_trailers = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= self._max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        too_large = self._size > self._max_body
        body = b"" if too_large else b"".join(self._body)
        self.requests.append(
            Request(
                self._parser.get_method().decode("latin-1"),
                path,
                query,
                self._headers,
                body,
                self._trailers,
                too_large,
                self._size,
            )
        )
        self._body = []

    def keep_alive(self) -> bool:
        """Whether the last request asked to keep the connection open."""
        return bool(self._parser.should_keep_alive())


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")


_STATUS_LINES = {status.value: _status_line(status.value) for status in HTTPStatus}


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Serialize ``response`` with a ``Content-Length`` and the connection disposition."""
    head = [_STATUS_LINES.get(response.status) or _status_line(response.status)]
    for name, value in response.headers:
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    head.append(b"Content-Length: %d\r\n" % len(response.body))
    if not keep_alive or response.close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(response.body)
    return b"".join(head)
