"""The AMQP-RPC door of ``lambdakit serve --amqp``: each function's queue, run on its warm pool.

Compatible with the Lambda Runtime API Daemon's clients (``../shared/reference/amqp-rpc.md``);
the message contract is :mod:`lambdakit.amqp.contract`, the queue declarations
:mod:`lambdakit.amqp.queues`.

Theory of operation
-------------------
On every (re)connection (:class:`~lambdakit.amqp.link.BrokerLink`) the door opens one channel
in publisher-confirm mode for replies and, per function, a channel that declares the function's
queue, sets ``basic.qos(prefetch_count = capacity)`` (its environments times the invocations
each runs at once) and consumes it with manual acks.  The prefetch bounds what this instance
holds: the broker keeps the rest for whichever instance has a free environment, so work spreads
instead of waiting in one instance's buffer.  Each delivery becomes an
:class:`~lambdakit.emulator.invocation.Invocation` on the same pool as the HTTP doors; its timeout
starts when an environment takes it, not when the message arrives.

When the invocation ends, the reply is published to ``reply_to`` and the request is acked only
once the broker has confirmed the reply.  If the connection that delivered the request died in
between, the broker has already requeued it for another instance: the door neither replies nor
acks (an ack on a dead channel cannot be sent anyway), so a caller gets one answer, from the
instance that runs it again.  Delivery is at least once: an instance killed after publishing a
reply and before its ack makes the request run twice and the caller see two replies (same
correlation id); ``redelivered`` tells a function's caller nothing, but the request id is the
correlation id, so a function can recognise a retry by it.

Event messages (``X-Amz-Invocation-Type: Event``) run the same way without a reply.  A failed
one is republished to a retry queue that dead-letters it back after the backoff, with its
attempt count one higher, and acked; after the function's ``max_retry_attempts``, or past
``max_event_age``, it goes to the on-failure destination.  Destinations are
``function:NAME`` (an Event message on that function's queue) or a ``.jsonl`` file here.

Stopping (:meth:`AmqpDoor.stop_consuming`, then :meth:`AmqpDoor.close`): the consumers are
cancelled first so no new work arrives, the service lets the invocations in flight finish and
reply, and whatever is still unfinished after that is handed back to the broker
(``basic.nack(requeue=True)``) for another instance.  Nothing is ever answered with an empty
reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiormq
import aiormq.abc
from pamqp import commands as spec

from lambdakit.amqp import contract, queues
from lambdakit.amqp.link import BrokerLink, Connection, ReopeningChannel, declare, publish
from lambdakit.amqp.uri import BrokerAddress
from lambdakit.emulator.activity import AmqpMessage, EventRetried
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.doors.async_queue import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    SUCCESS,
    append_record,
    destination_record,
)
from lambdakit.emulator.doors.tracking import InFlight
from lambdakit.emulator.invocation import (
    Invocation,
    InvocationRequest,
    InvocationResult,
    new_trace_id,
)
from lambdakit.emulator.pool import Pool, Throttled
from lambdakit.wire import errors, headers

logger = logging.getLogger("lambdakit.amqp")

Channel = aiormq.abc.AbstractChannel


class _Published(enum.Enum):
    OK = "ok"
    #: The broker did not confirm it, or the connection is down: another try may work.
    FAILED = "failed"
    #: The client library cannot encode it: another try cannot work.
    UNWRITABLE = "unwritable"


#: How many times a request whose reply the broker did not take goes back, and the pause first.
_HAND_BACK_LIMIT = 3
_HAND_BACK_PAUSE = 1.0
#: How long :meth:`AmqpDoor.close` waits for replies still being published, seconds.
_CLOSE_WAIT = 5.0
_PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "message_type",
    "user_id",
    "app_id",
)


def properties_of(message: aiormq.abc.DeliveredMessage) -> dict[str, object]:
    """A delivered message's properties as plain data (what :mod:`contract` reads)."""
    header = message.header.properties
    return {name: getattr(header, name, None) for name in _PROPERTY_NAMES}


async def _confirm_channel(connection: Connection) -> Channel:
    return await connection.channel(publisher_confirms=True)


def _bare(properties: Mapping[str, object]) -> dict[str, object]:
    """Only the correlation id of a request (when echoing the rest cannot be written)."""
    correlation_id = properties.get("correlation_id")
    return {"correlation_id": correlation_id if isinstance(correlation_id, str) else None}


@dataclass(slots=True, eq=False)
class _Delivery:
    """One message this instance holds until it is acked or handed back."""

    channel: Channel
    tag: int
    properties: Mapping[str, object]
    function: FunctionConfig
    request_id: str = ""
    #: Acked, nacked or handed back: nothing more is done with it.
    settled: bool = False
    task: asyncio.Task[None] | None = field(default=None)


class AmqpDoor:
    """Consumes every function's queue and answers on the broker."""

    def __init__(
        self,
        service: ServiceConfig,
        pools: Mapping[str, Pool],
        in_flight: InFlight,
        address: BrokerAddress,
        queue_kind: str = queues.DEFAULT_KIND,
    ) -> None:
        self._service = service
        self._pools = pools
        self._in_flight = in_flight
        self._queue_kind = queue_kind
        name = f"lambdakit serve {socket.gethostname()}:{os.getpid()}"
        self.link = BrokerLink(address, name, self._on_open, self._on_lost)
        self._publisher = ReopeningChannel(self.link, _confirm_channel)
        self._consumers: list[tuple[Channel, str]] = []
        self._held: set[_Delivery] = set()
        #: Request ids in flight here, so that two requests never share one.
        self._ids: set[str] = set()
        #: Each function queue's current consumer tag.
        self._tag_of_queue: dict[str, str] = {}
        #: Request ids whose reply the broker did not take, and how many times.
        self._handed_back: dict[str, int] = {}
        self._stopping = False
        self._arns = {name: service.function_arn(name) for name in pools}

    # Connection ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and consume; raises ``BrokerUnavailable`` when the broker cannot be reached."""
        await self.link.start()
        logger.info(
            "consuming %s from %s (%s queues)",
            ", ".join(sorted(self._pools)),
            self.link.address.redacted(),
            self._queue_kind,
        )

    async def _on_open(self, connection: Connection) -> None:
        await self._publisher.open(connection)
        self._consumers = []
        if self._stopping:
            return
        for pool in self._pools.values():
            await self._consume(connection, pool)

    async def _consume(self, connection: Connection, pool: Pool) -> None:
        """Declare the function's queue and consume it with prefetch = its capacity."""
        name = pool.function.name
        channel = await self._declare(connection, queues.function_queue(name, self._queue_kind))
        await channel.basic_qos(prefetch_count=pool.function.capacity)
        channel.on_consumer_cancel_callbacks.add(functools.partial(self._on_cancelled, pool))
        callback = functools.partial(self._on_message, pool, channel)
        ok = await channel.basic_consume(name, callback, no_ack=False)
        if self._stopping:  # the stop began while this was being set up
            await channel.basic_cancel(str(ok.consumer_tag))
            return
        self._consumers.append((channel, str(ok.consumer_tag)))
        self._tag_of_queue[name] = str(ok.consumer_tag)

    async def _on_cancelled(self, pool: Pool, frame: object) -> None:
        """The broker cancelled a consumer (its queue was deleted): declare it and consume again.

        The old channel stays open, so the deliveries it holds can still be acked.
        """
        name = pool.function.name
        logger.warning("%s: the broker cancelled the consumer of queue %s", name, name)
        tag = getattr(frame, "consumer_tag", None)
        self._consumers = [(c, t) for c, t in self._consumers if t != tag]
        for attempt in range(1, 6):
            await asyncio.sleep(0.2 * attempt)
            connection = self.link.connection
            if self._stopping or connection is None or connection.is_closed:
                return  # a reconnection consumes every queue again anyway
            try:
                await self._consume(connection, pool)
            except Exception as exc:
                logger.warning("%s: consuming again failed: %s", name, exc)
                continue
            logger.info("%s: consuming queue %s again", name, name)
            return

    async def _declare(self, connection: Connection, queue: queues.QueueDeclaration) -> Channel:
        """A channel on ``queue``, declared as configured or, if it exists otherwise, as is."""
        channel = await connection.channel(publisher_confirms=False)
        try:
            await declare(channel, queue)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            logger.warning(
                "queue %s exists with other settings than %s (%s); consuming it as it is",
                queue.name,
                self._queue_kind,
                exc,
            )
            channel = await connection.channel(publisher_confirms=False)
            await channel.queue_declare(queue.name, passive=True)
        return channel

    def _on_lost(self) -> None:
        """The broker requeued every unacked delivery; the runs in flight will not reply."""
        self._publisher.forget()
        self._consumers = []

    # Deliveries --------------------------------------------------------------------------------
    async def _on_message(
        self, pool: Pool, channel: Channel, message: aiormq.abc.DeliveredMessage
    ) -> None:
        properties = properties_of(message)
        delivery = _Delivery(channel, int(message.delivery_tag or 0), properties, pool.function)
        if self._stopping:
            await self._settle(delivery, requeue=True)
            return
        decision = contract.read_request(
            properties,
            message.body,
            redelivered=bool(message.redelivered),
            in_flight=self._ids,
        )
        if isinstance(decision, contract.Dropped):
            logger.warning("%s: dropped a message: %s", pool.function.name, decision.reason)
            self._tell(pool.function.name, "dropped")
            await self._settle(delivery)
            return
        if isinstance(decision, contract.Refused):
            logger.info(
                "%s: refused request %s: %s",
                pool.function.name,
                decision.request_id,
                decision.message,
            )
            outcome = await self._publish(contract.refusal_reply(properties, decision))
            if outcome is _Published.UNWRITABLE:
                outcome = await self._publish(contract.refusal_reply(_bare(properties), decision))
            if outcome is not _Published.OK:
                logger.warning("%s: the refusal of %s was not sent", pool.function.name, decision)
            await self._settle(delivery)  # running it elsewhere would be refused the same way
            self._tell(pool.function.name, "refused")
            return
        if decision.invocation_type == headers.EVENT and self._too_old(pool.function, decision):
            await self._event_outcome(delivery, decision, EVENT_AGE_EXCEEDED, None)
            await self._settle(delivery)
            self._tell(pool.function.name, "expired")
            return
        self._run(pool, delivery, decision)

    def _run(self, pool: Pool, delivery: _Delivery, rpc: contract.RpcRequest) -> None:
        request = InvocationRequest(
            payload=rpc.payload,
            invoked_arn=self._arns[pool.function.name],
            client_context=rpc.client_context,
            trace_id=rpc.trace_id or new_trace_id(),
            log_tail=rpc.log_tail,
        )
        invocation = Invocation(
            request, functools.partial(self._done, delivery, rpc), rpc.request_id
        )
        delivery.request_id = rpc.request_id
        self._held.add(delivery)
        self._ids.add(rpc.request_id)
        self._in_flight.started()
        try:
            pool.submit(invocation, bounded=False)
            self._tell(pool.function.name, "run")
        except Throttled:  # stopping: another instance will run it
            self._release(delivery)
            delivery.task = asyncio.ensure_future(self._settle(delivery, requeue=True))
            self._tell(pool.function.name, "handed-back")
        except Exception as exc:  # a bug or an environment problem: answer, never hang
            logger.exception("could not start invocation %s", rpc.request_id)
            invocation.resolve(
                InvocationResult(
                    errors.service_error_body(f"could not start the invocation: {exc}"),
                    function_error=errors.UNHANDLED,
                    error_type=errors.SERVICE_EXCEPTION,
                )
            )

    def _done(
        self, delivery: _Delivery, rpc: contract.RpcRequest, result: InvocationResult
    ) -> None:
        """The invocation ended (called by the sandbox): reply and ack off its stack."""
        delivery.task = asyncio.get_running_loop().create_task(
            self._complete(delivery, rpc, result), name=f"reply {rpc.request_id}"
        )

    async def _complete(
        self, delivery: _Delivery, rpc: contract.RpcRequest, result: InvocationResult
    ) -> None:
        try:
            if delivery.settled:
                return  # handed back to the broker by a stop that could not wait for it
            if delivery.channel.is_closed:
                logger.info(
                    "%s: request %s finished after its connection was lost; the broker "
                    "requeued it, so it is not answered from here",
                    delivery.function.name,
                    rpc.request_id,
                )
                delivery.settled = True
                self._tell(delivery.function.name, "lost")
                return
            if rpc.invocation_type == headers.EVENT:
                await self._event_result(delivery, rpc, result)
                return
            await self._reply(delivery, rpc, result)
        finally:
            self._release(delivery)

    async def _reply(
        self, delivery: _Delivery, rpc: contract.RpcRequest, result: InvocationResult
    ) -> None:
        """Publish the result, then ack; what to do when the broker does not take it."""

        def reply_to(request: contract.Properties) -> contract.Outgoing:
            return contract.result_reply(
                request,
                rpc.request_id,
                rpc.reply_to,
                body=result.body,
                content_type=result.content_type,
                function_error=result.function_error,
                log_result=result.log_result,
                version=delivery.function.version,
            )

        outcome = await self._publish(reply_to(delivery.properties))
        if outcome is _Published.UNWRITABLE:
            # Something echoed from the request cannot be written: answer with the result
            # alone.  Running it again would end the same way, so it is acked either way.
            outcome = await self._publish(reply_to(_bare(delivery.properties)))
            if outcome is not _Published.OK:
                logger.error("%s: the reply to %s cannot be sent", rpc.request_id, rpc.reply_to)
            await self._settle(delivery)
            self._tell(delivery.function.name, "replied" if outcome is _Published.OK else "dropped")
        elif outcome is _Published.FAILED:
            await self._hand_back(delivery)
        else:
            await self._settle(delivery)
            self._tell(delivery.function.name, "replied")

    async def _hand_back(self, delivery: _Delivery) -> None:
        """A reply the broker did not take: the request goes back (after a pause, a few times).

        The connection is failing (then the broker requeues it anyway) or the broker refused the
        publish; another attempt may be answered, but a request is not handed back forever.
        """
        tries = self._handed_back.get(delivery.request_id, 0) + 1
        if tries > _HAND_BACK_LIMIT:
            logger.error(
                "%s: %d replies to %s were not taken by the broker; dropping it",
                delivery.function.name,
                tries - 1,
                delivery.request_id,
            )
            self._handed_back.pop(delivery.request_id, None)
            await self._settle(delivery)
            return
        self._handed_back[delivery.request_id] = tries
        self._tell(delivery.function.name, "handed-back")
        await asyncio.sleep(_HAND_BACK_PAUSE)
        await self._settle(delivery, requeue=True)

    def _tell(self, function: str, outcome: str) -> None:
        """Publish what was done with a message (for ``/metrics``)."""
        self._pools[function].activity.publish(AmqpMessage(function, outcome, time.time()))

    def _release(self, delivery: _Delivery) -> None:
        if delivery in self._held:
            self._held.discard(delivery)
            self._ids.discard(delivery.request_id)
            self._in_flight.finished()

    # Events --------------------------------------------------------------------------------------
    @staticmethod
    def _too_old(function: FunctionConfig, rpc: contract.RpcRequest) -> bool:
        return time.time() - rpc.accepted_at > function.max_event_age

    async def _event_result(
        self, delivery: _Delivery, rpc: contract.RpcRequest, result: InvocationResult
    ) -> None:
        function = delivery.function
        if result.ok:
            await self._event_outcome(delivery, rpc, SUCCESS, result)
            self._tell(function.name, "replied")  # an Event's "reply" is its destination
        elif rpc.attempt <= function.max_retry_attempts:
            delay = function.retry_backoff * 2 ** (rpc.attempt - 1)
            logger.info(
                "event %s failed (%s), retry %d in %g s",
                rpc.request_id,
                result.error_type,
                rpc.attempt,
                delay,
            )
            self._pools[function.name].activity.publish(
                EventRetried(function.name, rpc.request_id, rpc.attempt, time.time())
            )
            if not await self._retry(function.name, rpc, delay):
                await self._settle(delivery, requeue=True)  # the broker gives it out again
                self._tell(function.name, "handed-back")
                return
            self._tell(function.name, "retried")
        else:
            logger.warning("event %s failed %d time(s), giving up", rpc.request_id, rpc.attempt)
            await self._event_outcome(delivery, rpc, RETRIES_EXHAUSTED, result)
            self._tell(function.name, "failed")
        await self._settle(delivery)

    async def _retry(self, function: str, rpc: contract.RpcRequest, delay: float) -> bool:
        queue = queues.retry_queue(function, delay)
        channel = await self._publisher.get()
        if channel is None:
            return False
        try:
            await declare(channel, queue)
        except Exception as exc:
            logger.error("cannot declare the retry queue %s: %s", queue.name, exc)
            return False
        message = contract.event_message(
            queue.name,
            rpc.request_id,
            rpc.payload,
            attempt=rpc.attempt + 1,
            accepted_at=rpc.accepted_at,
            trace_id=rpc.trace_id,
        )
        return await self._publish(message) is _Published.OK

    async def _event_outcome(
        self,
        delivery: _Delivery,
        rpc: contract.RpcRequest,
        condition: str,
        result: InvocationResult | None,
    ) -> None:
        function = delivery.function
        target = function.on_success if condition == SUCCESS else function.on_failure
        if not target:
            return
        record = destination_record(
            rpc.request_id,
            rpc.payload,
            rpc.attempt,
            self._arns[function.name],
            condition,
            result,
        )
        data = json.dumps(record).encode()
        if not target.startswith("function:"):
            append_record(target, data, f"the {condition} record of event {rpc.request_id}")
            return
        name = target.split(":", 1)[1]
        message = contract.event_message(
            name, rpc.request_id, data, accepted_at=time.time(), trace_id=rpc.trace_id
        )
        if await self._publish(message, mandatory=True) is not _Published.OK:
            logger.error(
                "the %s record of event %s could not be sent to function %s",
                condition,
                rpc.request_id,
                name,
            )

    # Broker operations ---------------------------------------------------------------------------
    async def _publish(self, message: contract.Outgoing, mandatory: bool = False) -> _Published:
        """Publish on the default exchange; OK once the broker confirmed it (and routed it)."""
        channel = await self._publisher.get()
        if channel is None:
            return _Published.FAILED
        try:
            confirmation = await publish(channel, message, mandatory=mandatory)
        except (TypeError, ValueError) as exc:  # the client library cannot write it
            logger.warning("cannot write a message to %s: %s", message.routing_key, exc)
            return _Published.UNWRITABLE
        except Exception as exc:
            logger.warning("could not publish to %s: %s", message.routing_key, exc)
            return _Published.FAILED
        ok = isinstance(confirmation, spec.Basic.Ack)
        return _Published.OK if ok else _Published.FAILED

    async def _settle(self, delivery: _Delivery, requeue: bool | None = None) -> None:
        """Ack (``requeue`` None) or nack the delivery, if its channel still lives."""
        if delivery.settled:
            return
        delivery.settled = True
        if delivery.channel.is_closed:
            return  # the broker requeued it when the channel closed
        try:
            if requeue is None:
                await delivery.channel.basic_ack(delivery.tag)
            else:
                await delivery.channel.basic_nack(delivery.tag, requeue=requeue)
        except Exception as exc:
            logger.debug("could not settle delivery %d: %s", delivery.tag, exc)

    # Stop ----------------------------------------------------------------------------------------
    async def stop_consuming(self) -> None:
        """Cancel every consumer: the broker sends this instance no new work.

        A transient queue is deleted with what waits in it when its last consumer goes: that
        is the daemon's declaration, and the log says how many requests it takes along.
        """
        self._stopping = True
        consumers, self._consumers = self._consumers, []
        for channel, tag in consumers:
            with contextlib.suppress(Exception):
                await self._warn_if_last(channel, tag)
            with contextlib.suppress(Exception):
                await channel.basic_cancel(tag)

    async def _warn_if_last(self, channel: Channel, tag: str) -> None:
        if self._queue_kind != "transient":
            return
        queue = next((q for q, t in self._tag_of_queue.items() if t == tag), "")
        if not queue:
            return
        declared = await channel.queue_declare(queue, passive=True)
        waiting = declared.message_count or 0
        if (declared.consumer_count or 0) <= 1 and waiting:
            logger.warning(
                "%s: this is the last consumer of the transient queue %s; the broker deletes it "
                "with the %d request(s) waiting in it (--amqp-queue durable keeps them)",
                queue,
                queue,
                waiting,
            )

    async def close(self) -> None:
        """Let replies being published leave, hand unfinished work back, then disconnect."""
        self._stopping = True
        replying = [d.task for d in self._held if d.task is not None and not d.task.done()]
        if replying:
            await asyncio.wait(replying, timeout=_CLOSE_WAIT)
        unfinished = [d for d in self._held if d.task is None]
        if unfinished:
            logger.warning("handing %d unfinished request(s) back to the broker", len(unfinished))
        for delivery in unfinished:
            self._release(delivery)
            await self._settle(delivery, requeue=True)
        await self.link.close()
