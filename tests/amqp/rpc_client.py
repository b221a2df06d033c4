"""An AMQP-RPC client that speaks as the Lambda Runtime API Daemon's Python echo client does.

Requests go to the default exchange with the function's name as routing key, JSON bodies,
``content_type=application/json``, persistent (``delivery_mode=2``), a fresh ``correlation_id``
each and ``reply_to`` = a broker-named, auto-delete reply queue consumed with auto-ack, prefetch
100 and consumer priority 10; publisher confirms are on.  For broker-restart tests the reply
queue can instead be a durable named one (``durable_reply_queue``), which :meth:`reconnect`
consumes again.  Every reply is kept, so duplicates (at-least-once delivery) can be counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pika


@dataclass(frozen=True)
class Reply:
    correlation_id: str
    body: bytes
    headers: dict[str, Any]
    properties: Any = field(repr=False, compare=False)


class RpcClient:
    """A blocking pika client; not thread-safe (one per test)."""

    def __init__(
        self, url: str, *, durable_reply_queue: str | None = None, exclusive: bool = False
    ) -> None:
        self._url = url
        self._durable = durable_reply_queue
        self._exclusive = exclusive
        self.replies: dict[str, list[Reply]] = {}
        self._connect()

    def _connect(self) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(self._url))
        channel = self._connection.channel()
        channel.confirm_delivery()
        if self._durable:
            channel.queue_declare(self._durable, durable=True, auto_delete=False)
            self.reply_queue = self._durable
        else:
            declared = channel.queue_declare(
                "", durable=False, auto_delete=True, exclusive=self._exclusive
            )
            self.reply_queue = declared.method.queue
        channel.basic_qos(prefetch_count=100)
        channel.basic_consume(
            self.reply_queue, self._on_reply, auto_ack=True, arguments={"x-priority": 10}
        )
        self._channel = channel

    def _on_reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        correlation_id = properties.correlation_id or ""
        reply = Reply(correlation_id, body, dict(properties.headers or {}), properties)
        self.replies.setdefault(correlation_id, []).append(reply)

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
        self._channel.basic_publish(
            "",
            queue,
            body,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2 if persistent else 1,
                correlation_id=correlation_id,
                reply_to=self.reply_queue,
                headers=dict(headers) if headers is not None else None,
            ),
        )
        return correlation_id

    def collect(self, correlation_ids: Collection[str], timeout: float) -> dict[str, list[Reply]]:
        """Pump until every id has a reply or ``timeout`` passes; every reply received so far."""
        import time

        deadline = time.monotonic() + timeout
        wanted = set(correlation_ids)
        while time.monotonic() < deadline and not wanted <= self.replies.keys():
            self._connection.process_data_events(time_limit=0.05)
        return {key: list(value) for key, value in self.replies.items()}

    def call(
        self,
        queue: str,
        body: bytes,
        *,
        headers: Mapping[str, object] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        correlation_id = self.publish(queue, body, headers=headers)
        replies = self.collect([correlation_id], timeout).get(correlation_id)
        if not replies:
            raise TimeoutError(f"no reply to {correlation_id} from {queue} in {timeout} s")
        return replies[0]

    def reconnect(self) -> None:
        """A new connection (after a broker restart); a durable reply queue is consumed again."""
        import contextlib

        with contextlib.suppress(Exception):
            self._connection.close()
        self._connect()

    def close(self) -> None:
        if self._connection.is_open:
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
