"""The Telemetry API (and the older Logs API): subscriptions, buffering and delivery.

https://docs.aws.amazon.com/lambda/latest/dg/telemetry-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html

Theory of operation
-------------------
During Init an extension subscribes (``PUT /2022-07-01/telemetry``, or ``PUT /2020-08-15/logs``)
with the record types it wants (``platform``, ``function``, ``extension``), how to buffer them
(``maxItems``, ``maxBytes``, ``timeoutMs``, validated against Lambda's ranges) and where to send
them: an HTTP listener (each batch is POSTed as a JSON array) or a TCP port (NDJSON).  The host
``sandbox.localdomain`` means this machine.  The sandbox :meth:`TelemetryHub.emit`\\ s every
record; each subscription buffers what it asked for and flushes when a limit is reached or the
timeout passes.  Deliveries of one subscription are sent in order, retried with backoff, and the
buffers are drained before the environment shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lambdakit.emulator.http import Request, Response
from lambdakit.emulator.logs import Report
from lambdakit.wire import errors, limits

logger = logging.getLogger("lambdakit.telemetry")

TELEMETRY_SCHEMAS = frozenset({"2022-07-01", "2022-12-13", "2025-01-29"})
#: "Lambda Managed Instances require 2025-01-29" (telemetry-api-reference.html).
MANAGED_TELEMETRY_SCHEMAS = frozenset({"2025-01-29"})
LOGS_SCHEMAS = frozenset({"2020-08-15", "2021-03-18"})
_TYPES = frozenset({"platform", "function", "extension"})
_LOCAL_HOSTS = frozenset({"sandbox.localdomain", "sandbox", "localhost", "127.0.0.1"})
_JSON = (("Content-Type", "application/json"),)
_RETRIES = 3
#: Batches waiting for a slow listener; beyond this the oldest is dropped.
_MAX_BATCHES = 1000


def _validation_error(message: str) -> Response:
    return Response(400, _JSON, errors.error_body(errors.VALIDATION_ERROR, message))


@dataclass(frozen=True, slots=True)
class Destination:
    protocol: str  # "HTTP" or "TCP"
    host: str
    port: int
    path: str = "/"


@dataclass(frozen=True, slots=True)
class Buffering:
    max_items: int
    max_bytes: int
    timeout_ms: int


def _bounded(settings: Mapping[str, object], key: str, bounds: tuple[int, int, int]) -> int:
    default, low, high = bounds
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"buffering.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_subscription(
    body: bytes, schemas: frozenset[str]
) -> tuple[frozenset[str], Buffering, Destination]:
    """Validate a subscription request; raise ``ValueError`` naming the field at fault."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # nested deeper than the parser goes
        raise ValueError("the body is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the body must be a JSON object")
    schema = document.get("schemaVersion")
    if schema not in schemas:
        raise ValueError(f"schemaVersion must be one of {sorted(schemas)}, got {schema!r}")
    types = document.get("types")
    if not isinstance(types, list) or not types or any(t not in _TYPES for t in types):
        raise ValueError(f"types must be a non-empty list of {sorted(_TYPES)}, got {types!r}")
    settings = document.get("buffering", {})
    if not isinstance(settings, dict):
        raise ValueError("buffering must be an object")
    buffering = Buffering(
        _bounded(settings, "maxItems", limits.TELEMETRY_MAX_ITEMS),
        _bounded(settings, "maxBytes", limits.TELEMETRY_MAX_BYTES),
        _bounded(settings, "timeoutMs", limits.TELEMETRY_TIMEOUT_MS),
    )
    return frozenset(types), buffering, _destination(document.get("destination"))


def _destination(value: object) -> Destination:
    if not isinstance(value, dict):
        raise ValueError("destination must be an object")
    protocol = value.get("protocol")
    if protocol == "TCP":
        port = value.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"destination.port must be a port number, got {port!r}")
        return Destination("TCP", "127.0.0.1", port)
    if protocol != "HTTP":
        raise ValueError(f"destination.protocol must be HTTP or TCP, got {protocol!r}")
    uri = value.get("URI")
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "http" or parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(
            f"destination.URI must be http://sandbox.localdomain:PORT/PATH, got {uri!r}"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"destination.URI has an invalid port: {uri!r}") from None
    return Destination("HTTP", "127.0.0.1", port, parts.path or "/")


class Subscription:
    """One subscriber's buffer and its ordered deliveries."""

    def __init__(
        self, name: str, types: frozenset[str], buffering: Buffering, destination: Destination
    ) -> None:
        self.name = name
        self.types = types
        self.buffering = buffering
        self.destination = destination
        self._items: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._batches: asyncio.Queue[list[bytes]] = asyncio.Queue()

    def add(self, item: bytes) -> None:
        self._items.append(item)
        self._size += len(item)
        if len(self._items) >= self.buffering.max_items or self._size >= self.buffering.max_bytes:
            self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.buffering.timeout_ms / 1000, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        if self._batches.qsize() >= _MAX_BATCHES:
            dropped = self._batches.get_nowait()
            logger.warning(
                "telemetry listener of %s is too slow: dropped %d records", self.name, len(dropped)
            )
        self._batches.put_nowait(self._items)
        self._items, self._size = [], 0
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        while not self._batches.empty():
            batch = self._batches.get_nowait()
            for attempt in range(_RETRIES):
                try:
                    await asyncio.wait_for(self._send(batch), 5)
                    break
                except (OSError, asyncio.TimeoutError, ValueError) as exc:
                    logger.debug(
                        "telemetry to %s failed (%s), attempt %d", self.name, exc, attempt + 1
                    )
                    await asyncio.sleep(0.05 * 2**attempt)
            else:
                logger.warning(
                    "dropped %d telemetry records for %s: its listener at %s:%d "
                    "did not accept them",
                    len(batch),
                    self.name,
                    self.destination.host,
                    self.destination.port,
                )

    async def _send(self, batch: list[bytes]) -> None:
        destination = self.destination
        reader, writer = await asyncio.open_connection(destination.host, destination.port)
        try:
            if destination.protocol == "TCP":
                writer.write(b"\n".join(batch) + b"\n")
                await writer.drain()
                return
            body = b"[" + b",".join(batch) + b"]"
            writer.write(
                f"POST {destination.path} HTTP/1.1\r\nHost: sandbox.localdomain\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2 or not parts[1].isdigit() or not 200 <= int(parts[1]) < 300:
                raise ValueError(f"listener answered {status_line!r}")
            # Delivered: the rest of the answer does not matter, and a retry would duplicate.
            with contextlib.suppress(OSError):
                await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @property
    def busy(self) -> bool:
        """Records are buffered or on their way."""
        return bool(self._items) or (self._sending is not None and not self._sending.done())

    async def drain(self) -> None:
        self.flush()
        if self._sending is not None:
            await self._sending


def _now() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class TelemetryHub:
    """The Telemetry and Logs API subscriptions of one sandbox."""

    def __init__(self, managed: bool = False) -> None:
        #: Lambda Managed Instances: schema 2025-01-29 only, no Logs API, no runtimeDone.
        self.managed = managed
        self._init_type = "lambda-managed-instances" if managed else "on-demand"
        self.subscriptions: dict[str, Subscription] = {}
        #: Records of the Init phase, replayed to each subscriber (they subscribe during Init,
        #: after some of them happened): (category, encoded record).
        self._backlog: list[tuple[str, bytes]] = []
        self._open = True

    @property
    def open(self) -> bool:
        """Subscriptions are accepted during Init only."""
        return self._open

    @open.setter
    def open(self, value: bool) -> None:
        self._open = value
        if not value:
            self._backlog.clear()

    def subscribe(self, request: Request, extension_name: str, api: str) -> Response:
        if not self.open:
            return _validation_error("subscriptions are accepted only during the Init phase")
        if api != "telemetry":
            schemas = LOGS_SCHEMAS
        else:
            schemas = MANAGED_TELEMETRY_SCHEMAS if self.managed else TELEMETRY_SCHEMAS
        try:
            types, buffering, destination = parse_subscription(request.body, schemas)
        except ValueError as exc:
            return _validation_error(str(exc))
        old = self.subscriptions.get(extension_name)
        if old is not None:
            old.flush()
        subscription = Subscription(extension_name, types, buffering, destination)
        self.subscriptions[extension_name] = subscription
        for category, item in self._backlog:
            if category in types:
                subscription.add(item)
        logger.debug("%s subscribed to %s via %s", extension_name, sorted(types), destination)
        return Response(200, (("Content-Type", "text/plain"),), b"OK")

    def emit(self, kind: str, record: object) -> None:
        """Queue one record (``platform.start``, ``function`` ...) for its subscribers."""
        category = kind.partition(".")[0]
        item: bytes | None = None
        if self._open:
            item = json.dumps({"time": _now(), "type": kind, "record": record}).encode()
            self._backlog.append((category, item))
        for subscription in self.subscriptions.values():
            if category in subscription.types:
                if item is None:
                    item = json.dumps({"time": _now(), "type": kind, "record": record}).encode()
                subscription.add(item)

    # The platform records of the Telemetry schema, one method each ----------------------------
    def init_start(self, function_name: str, version: str) -> None:
        self.emit(
            "platform.initStart",
            {
                "initializationType": self._init_type,
                "phase": "init",
                "functionName": function_name,
                "functionVersion": version,
            },
        )

    def init_done(self, duration_ms: float) -> None:
        """``platform.initRuntimeDone`` and ``platform.initReport`` of a successful Init."""
        self.emit(
            "platform.initRuntimeDone",
            {"initializationType": self._init_type, "phase": "init", "status": "success"},
        )
        self.emit(
            "platform.initReport",
            {
                "initializationType": self._init_type,
                "phase": "init",
                "status": "success",
                "metrics": {"durationMs": round(duration_ms, 3)},
            },
        )

    def start(self, request_id: str, version: str) -> None:
        if self.subscriptions:
            self.emit("platform.start", {"requestId": request_id, "version": version})

    def runtime_done(self, request_id: str, ok: bool, duration_ms: float, produced: int) -> None:
        if self.subscriptions and not self.managed:  # Managed Instances report only start, report
            self.emit(
                "platform.runtimeDone",
                {
                    "requestId": request_id,
                    "status": "success" if ok else "error",
                    "metrics": {"durationMs": round(duration_ms, 3), "producedBytes": produced},
                },
            )

    def report(self, report: Report, error_type: str = "") -> None:
        """``platform.report``; ``error_type`` is a function error's (its status is then
        ``error``, with ``errorType``, as the Telemetry API reports it)."""
        if self.subscriptions:
            record = report.record()
            if error_type and report.status == "success":
                record["status"] = "error"
                record["errorType"] = error_type
            self.emit("platform.report", record)

    def line(self, kind: str, line: str) -> None:
        """A ``function`` or ``extension`` output line."""
        if self.subscriptions or self._open:
            self.emit(kind, line)

    @property
    def busy(self) -> bool:
        """Some subscriber still has records buffered or on their way."""
        return any(s.busy for s in self.subscriptions.values())

    def flush(self) -> None:
        """Send what every subscriber has buffered now, not at its timeout."""
        for subscription in self.subscriptions.values():
            subscription.flush()

    async def drain(self, timeout: float) -> None:
        """Deliver everything still buffered, within ``timeout`` seconds."""
        if not self.subscriptions:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.drain() for s in self.subscriptions.values())), timeout
            )
