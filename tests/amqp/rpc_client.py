"""An AMQP-RPC client that speaks as the Lambda Runtime API Daemon's Python echo client does.

The wire contract: a request goes to the default exchange ``""`` with the function's name (its
queue) as routing key, a JSON body, ``content_type="application/json"``, persistent
(``delivery_mode=2``), a fresh uuid4 ``correlation_id`` and ``reply_to`` = the client's reply
queue, optionally with ``headers``; publisher confirms are on, so :meth:`RpcClient.publish`
returns once the broker has taken the request.  The reply queue is broker-named
(``queue=""``), auto-delete and, like the daemon client's, not exclusive; it is consumed with
auto-ack, prefetch 100 and consumer priority 10 (``x-priority``).  For broker-restart tests it
can instead be a durable queue of a given name (``durable_reply_queue``), which
:meth:`RpcClient.reconnect` consumes again after the restart.

Every reply is kept, under its correlation id (unknown ids too), so duplicates of at-least-once
delivery can be counted with :func:`counts`.  One lock guards the connection, so threads may
share a client (pika's own connection is not thread-safe).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pika

PREFETCH = 100
PRIORITY = 10


@dataclass(frozen=True)
class Reply:
    """One reply message: its correlation id, body, headers and all its properties."""

    correlation_id: str
    body: bytes
    headers: dict[str, object]
    properties: pika.BasicProperties = field(repr=False, compare=False)


class RpcClient:
    """A blocking pika client for AMQP-RPC requests; a context manager."""

    def __init__(
        self, url: str, *, durable_reply_queue: str | None = None, exclusive: bool = False
    ) -> None:
        self.url = url
        self.durable_reply_queue = durable_reply_queue
        self.exclusive = exclusive
        self.reply_queue = ""
        self._lock = threading.RLock()
        self._replies: dict[str, list[Reply]] = {}
        self._connection: Any = None
        self._channel: Any = None
        self._connect()

    def _connect(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            if self.durable_reply_queue is not None:
                channel.queue_declare(self.durable_reply_queue, durable=True)
                queue = self.durable_reply_queue
            else:
                declared = channel.queue_declare("", auto_delete=True, exclusive=self.exclusive)
                queue = declared.method.queue
            channel.basic_qos(prefetch_count=PREFETCH)
            channel.basic_consume(
                queue, self._on_reply, auto_ack=True, arguments={"x-priority": PRIORITY}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                connection.close()
            raise
        self._connection, self._channel, self.reply_queue = connection, channel, queue

    def _on_reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        correlation_id = properties.correlation_id or ""
        reply = Reply(correlation_id, body, dict(properties.headers or {}), properties)
        self._replies.setdefault(correlation_id, []).append(reply)  # under the lock: pumped

    @property
    def replies(self) -> dict[str, list[Reply]]:
        """Every reply received so far, by correlation id (a copy)."""
        with self._lock:
            return {key: list(value) for key, value in self._replies.items()}

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        persistent: bool = True,
    ) -> str:
        """Publish one request; returns its correlation id once the broker confirmed it."""
        correlation_id = correlation_id or str(uuid.uuid4())
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2 if persistent else 1,
            correlation_id=correlation_id,
            reply_to=self.reply_queue,
            headers=dict(headers) if headers is not None else None,
        )
        with self._lock:
            self._channel.basic_publish("", queue, body, properties)
        return correlation_id

    def collect(self, correlation_ids: Collection[str], timeout: float) -> dict[str, list[Reply]]:
        """Pump until every id has a reply or ``timeout`` passes; every reply received so far.

        The result holds all replies since the client was made, of any correlation id, so a
        missing id is simply absent and duplicates show as lists longer than one.
        """
        wanted = set(correlation_ids)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                left = deadline - time.monotonic()
                if wanted <= self._replies.keys() or left <= 0:
                    break
                # Short slices: other threads get the lock in between.
                self._connection.process_data_events(time_limit=min(0.05, left))
        return self.replies

    def call(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, object] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        """Publish one request and wait for its reply (the first, if it came more than once)."""
        correlation_id = self.publish(queue, body, headers=headers)
        replies = self.collect([correlation_id], timeout).get(correlation_id)
        if not replies:
            raise TimeoutError(f"no reply to {correlation_id} from {queue} in {timeout} s")
        return replies[0]

    def reconnect(self) -> None:
        """A new connection (after a broker restart).

        A durable reply queue is consumed again, with the replies it kept; a broker-named one
        is declared anew (its replies, and those addressed to the old name, are gone).
        """
        with self._lock:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connect()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    self._connection.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def counts(sent: Collection[str], replies: Mapping[str, list[Reply]]) -> tuple[int, int, int]:
    """(sent, replied: ids with at least one reply, duplicates: replies beyond the first)."""
    replied = sum(1 for c in sent if replies.get(c))
    duplicates = sum(max(0, len(replies.get(c, [])) - 1) for c in sent)
    return len(sent), replied, duplicates
