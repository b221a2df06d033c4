"""How a function's queue is declared: every consumer of one queue must declare it the same way.

``transient`` is the Lambda Runtime API Daemon's declaration (``durable=false``,
``auto_delete=true``, no arguments), so daemons and lambdakit instances can share a queue; the
broker deletes it, with its messages, when its last consumer goes away or the broker restarts.
``durable`` is a durable classic queue that outlives both (with persistent messages, nothing
published is lost on a broker restart).  ``quorum`` is a replicated quorum queue; it counts
deliveries (``x-delivery-count``), which lets a worker drop a message that keeps taking its
instances down.  A declaration that differs from the queue's is refused by the broker
(406 PRECONDITION_FAILED); the door then consumes the queue as it is.

Event retries wait in ``lambdakit.retry.<function>.<delay ms>``: a durable queue with that
message TTL that dead-letters back into the function's queue, and that the broker deletes once
unused for a minute past the delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

QUEUE_KINDS = ("transient", "durable", "quorum")
DEFAULT_KIND = "transient"


@dataclass(frozen=True, slots=True)
class QueueDeclaration:
    """The ``queue.declare`` arguments of one queue."""

    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, object]


def function_queue(name: str, kind: str = DEFAULT_KIND) -> QueueDeclaration:
    """The queue of function ``name``."""
    if kind == "transient":
        return QueueDeclaration(name, durable=False, auto_delete=True, arguments={})
    if kind == "durable":
        return QueueDeclaration(name, durable=True, auto_delete=False, arguments={})
    if kind == "quorum":
        return QueueDeclaration(
            name, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
        )
    raise ValueError(f"queue kind {kind!r} is not one of {', '.join(QUEUE_KINDS)}")


def retry_queue(function: str, delay: float) -> QueueDeclaration:
    """Where an Event retry of ``function`` waits ``delay`` seconds before going back to it."""
    delay_ms = max(1, int(delay * 1000))
    return QueueDeclaration(
        f"lambdakit.retry.{function}.{delay_ms}",
        durable=True,
        auto_delete=False,
        arguments={
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": function,
            "x-expires": delay_ms + 60_000,
        },
    )
