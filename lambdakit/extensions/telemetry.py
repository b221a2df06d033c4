"""A Telemetry API subscriber: a local HTTP listener plus the subscription, yielding records.

https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html

Lambda POSTs each batch of records, a JSON array of ``{"time", "type", "record"}`` objects, to the
HTTP destination an extension subscribed during Init, ``http://sandbox.localdomain:PORT/PATH``.
:class:`TelemetryListener` is that destination: a listening socket on 127.0.0.1 (port 0: any
free one) served by a daemon thread, one connection and one POST at a time (answered 200, then
the connection is closed, as the platform expects of an HTTP/1.0-style server), read with
lambdakit's HTTP/1.1 codec (:mod:`lambdakit.wire.http1`).  Batches arrive in order on that one
thread; each record goes to the callback if there is one, else to a queue that
:meth:`TelemetryListener.records` iterates.  The subscription must be made during Init, before
the extension first calls ``event/next``.

    client = ExtensionsApiClient.from_environ(os.environ)
    client.register(name, ["INVOKE", "SHUTDOWN"])
    listener = TelemetryListener().start()
    listener.subscribe(client, ["platform", "function"])
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lambdakit.extensions.client import ExtensionsApiClient
from lambdakit.wire import extensions as wire
from lambdakit.wire import limits, paths
from lambdakit.wire.http1 import EndOfMessage, Parser, ProtocolError, RequestHead

logger = logging.getLogger("lambdakit.extensions")


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """One record: ``type`` is ``platform.start``, ``function``, ``extension`` ..."""

    time: str
    type: str
    record: object

    @property
    def request_id(self) -> str | None:
        """The ``requestId`` of a per-invocation platform record."""
        if isinstance(self.record, dict):
            value = self.record.get("requestId")
            return str(value) if value is not None else None
        return None


@dataclass(frozen=True, slots=True)
class Buffering:
    """How Lambda batches records for this subscriber (Lambda's ranges are checked there)."""

    max_items: int = limits.TELEMETRY_MAX_ITEMS[1]
    max_bytes: int = limits.TELEMETRY_MAX_BYTES[1]
    #: The smallest timeout Lambda accepts: records arrive within about 25 ms.
    timeout_ms: int = limits.TELEMETRY_TIMEOUT_MS[1]

    def as_json(self) -> dict[str, int]:
        return {
            "maxItems": self.max_items,
            "maxBytes": self.max_bytes,
            "timeoutMs": self.timeout_ms,
        }


_CLOSED = object()
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_NOT_POST = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class TelemetryListener:
    """The HTTP destination of a Telemetry API subscription."""

    def __init__(
        self,
        callback: Callable[[TelemetryRecord], object] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/telemetry",
    ) -> None:
        self._callback = callback
        self._address = (host, port)
        self.path = path
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._listener: socket.socket | None = None
        self._serving: socket.socket | None = None  # the connection being read, if any
        self._thread: threading.Thread | None = None
        self._port = 0

    def start(self) -> TelemetryListener:
        self._listener = socket.create_server(self._address)
        self._port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(
            target=self._serve, args=(self._listener,), name="telemetry listener", daemon=True
        )
        self._thread.start()
        return self

    def _serve(self, listener: socket.socket) -> None:
        """Accept connections one at a time until :meth:`close`."""
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            self._serving = conn
            if self._listener is None:  # close() came meanwhile (it shuts what it sees serving)
                conn.close()
                return
            try:
                body = self._read_post(conn)
            except (OSError, ProtocolError) as exc:
                logger.debug("telemetry listener: %s", exc)
                body = None
            finally:
                self._serving = None
                conn.close()
            if body is not None:
                self._receive(body)

    def _read_post(self, conn: socket.socket) -> bytes | None:
        """Read one request and answer it: the body of a POST, or None."""
        parser = Parser(server=True)
        head: RequestHead | None = None
        parts: list[bytes] = []
        while True:
            data = conn.recv(65536)
            try:
                events = parser.feed(data) if data else parser.close()
            except ProtocolError:
                conn.sendall(_BAD_REQUEST)
                raise
            if not data and not events:
                return None  # closed before sending a request
            for event in events:
                if isinstance(event, RequestHead):
                    head = event
                elif isinstance(event, bytes):
                    parts.append(event)
                elif isinstance(event, EndOfMessage):
                    assert head is not None
                    body = b"".join(parts)
                    logger.debug(
                        "telemetry listener: %s %s, %d bytes", head.method, head.target, len(body)
                    )
                    if head.method != "POST":
                        conn.sendall(_NOT_POST)
                        return None
                    conn.sendall(_OK)
                    return body

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("start() the listener first")
        return self._port

    @property
    def uri(self) -> str:
        """The destination URI, as Lambda wants it."""
        return f"http://{wire.SANDBOX_HOST}:{self.port}{self.path}"

    def subscription(
        self,
        types: Sequence[str] = (wire.TELEMETRY_PLATFORM, wire.TELEMETRY_FUNCTION),
        buffering: Buffering | None = None,
        schema: str = wire.TELEMETRY_SCHEMA,
    ) -> dict[str, object]:
        """The body of ``PUT /2022-07-01/telemetry`` for this listener."""
        return {
            "schemaVersion": schema,
            "types": list(types),
            "buffering": (buffering or Buffering()).as_json(),
            "destination": {"protocol": "HTTP", "URI": self.uri},
        }

    def subscribe(
        self,
        client: ExtensionsApiClient,
        types: Sequence[str] = (wire.TELEMETRY_PLATFORM, wire.TELEMETRY_FUNCTION),
        buffering: Buffering | None = None,
        schema: str = wire.TELEMETRY_SCHEMA,
    ) -> None:
        """Subscribe this listener (with a registered extension's client), during Init."""
        client.subscribe(self.subscription(types, buffering, schema), paths.TELEMETRY)

    def _receive(self, body: bytes) -> None:
        try:
            batch = json.loads(body)
        except ValueError:
            logger.warning("telemetry listener: a batch that is not JSON: %r", body[:200])
            return
        for item in batch if isinstance(batch, list) else [batch]:
            if not isinstance(item, dict):
                continue
            record = TelemetryRecord(
                str(item.get("time", "")), str(item.get("type", "")), item.get("record")
            )
            if self._callback is None:
                self._queue.put(record)
                continue
            try:
                self._callback(record)
            except Exception:
                logger.exception("telemetry callback failed on %s", record.type)

    def records(self, timeout: float | None = None) -> Iterator[TelemetryRecord]:
        """Records as they arrive (without a callback); ends when closed, or after ``timeout``
        seconds without a record."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return
            if item is _CLOSED:
                return
            assert isinstance(item, TelemetryRecord)
            yield item

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            listener.close()
        serving = self._serving
        if serving is not None:
            with contextlib.suppress(OSError):
                serving.shutdown(socket.SHUT_RDWR)  # ... or in recv()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._queue.put(_CLOSED)

    def __enter__(self) -> TelemetryListener:
        return self.start() if self._listener is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
