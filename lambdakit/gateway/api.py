"""The Invoke API answered through RabbitMQ: any number of these in front of any number of workers.

Theory of operation
-------------------
The gateway holds no function configuration and no state that outlives a request: the broker
knows which functions exist (a queue per function, consumed by ``lambdakit serve --amqp``
workers or Lambda Runtime API Daemons), so a request that no queue takes comes back from a
``mandatory`` publish and is answered with Lambda's 404.  Requests are validated as the Invoke
API validates them (:func:`~lambdakit.emulator.doors.invoke_api.read_invoke`) before anything
is published.

Request ids are the AWS SDK's ``amz-sdk-invocation-id`` when there is one, which the SDK keeps
on its retries, so that a function sees a retried call under one id.

* **RequestResponse**: published transient with ``reply_to`` = RabbitMQ's direct reply-to
  (https://www.rabbitmq.com/docs/direct-reply-to), so the reply comes straight back to this
  connection with no reply queue to declare.  The pending caller is registered *before* the
  publish, so no reply can arrive unclaimed.  The reply's headers become the HTTP answer
  (:func:`~lambdakit.amqp.contract.invoke_answer`).  A worker that dies mid-invocation leaves
  the request unacked; the broker gives it to another worker, whose reply this gateway takes.
  Extra replies (at-least-once delivery) are dropped.  The request expires (AMQP
  ``expiration``) after ``--reply-timeout``: nobody waits for it any more.
* **Event** and **InvokeAsync**: published persistent with publisher confirms; the 202 leaves
  once the broker has confirmed.  Workers run, retry and route them (``docs/scale-out.md``).
* **DryRun**: a passive declaration of the function's queue: 204 if it exists, else 404.
* **InvokeWithResponseStream**: replies over AMQP are whole messages, so the stream is one
  ``PayloadChunk`` and the ``InvokeComplete`` event.

When the broker connection is lost, callers still waiting get a 500 ``ServiceException``
(their invocation may still run; this gateway can no longer hear its reply) and new requests
get the same until the link has reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Container

import aiormq
import aiormq.abc

from lambdakit.amqp import contract
from lambdakit.amqp.link import BrokerLink, Connection, ReopeningChannel, publish
from lambdakit.amqp.uri import BrokerAddress
from lambdakit.emulator.doors.invoke_api import (
    ASYNC,
    INDEX,
    STREAM,
    InvokeCall,
    as_event,
    match_operation,
    read_invoke,
    service_error,
    unknown_operation,
)
from lambdakit.emulator.doors.tracking import InFlight
from lambdakit.emulator.http import Reply, Request, Response
from lambdakit.gateway.metrics import GatewayMetrics
from lambdakit.wire import errors, eventstream, headers

logger = logging.getLogger("lambdakit.gateway")

_JSON = "application/json"
_SDK_ID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_SYNC_TYPES = (headers.REQUEST_RESPONSE, headers.EVENT, headers.DRY_RUN)
_STREAM_TYPES = (headers.REQUEST_RESPONSE, headers.DRY_RUN)
#: The default for ``--reply-timeout``: Lambda's longest function timeout, plus time to queue.
DEFAULT_REPLY_TIMEOUT = 960.0


class Gateway:
    """The request handler of ``lambdakit gateway``."""

    def __init__(
        self,
        address: BrokerAddress,
        function_arn: Callable[[str], str],
        in_flight: InFlight,
        reply_timeout: float = DEFAULT_REPLY_TIMEOUT,
    ) -> None:
        self._function_arn = function_arn
        self._in_flight = in_flight
        self._reply_timeout = reply_timeout
        name = f"lambdakit gateway {socket.gethostname()}:{os.getpid()}"
        self.link = BrokerLink(address, name, self._on_open, self._on_lost)
        self._channel = ReopeningChannel(self.link, self._reply_channel, self._fail_waiting)
        self._pending: dict[str, asyncio.Future[Response]] = {}
        #: ``GET /metrics``: the answers sent, by function.
        self.metrics = GatewayMetrics(lambda: self.link.is_open)

    # Broker ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect; raises ``BrokerUnavailable`` when the broker cannot be reached."""
        await self.link.start()

    async def _on_open(self, connection: Connection) -> None:
        await self._channel.open(connection)

    async def _reply_channel(self, connection: Connection) -> aiormq.abc.AbstractChannel:
        """Publishes with confirms and returns, and receives the replies (direct reply-to)."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.basic_consume(contract.DIRECT_REPLY_TO, self._on_reply, no_ack=True)
        return channel

    def _on_lost(self) -> None:
        self._channel.forget()
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Replies to the requests of a channel that is gone can no longer arrive."""
        pending, self._pending = self._pending, {}
        for request_id, future in pending.items():
            if not future.done():
                future.set_result(
                    service_error(
                        errors.SERVICE_EXCEPTION,
                        f"the gateway lost its broker connection while waiting for {request_id}; "
                        "the invocation may still run",
                    )
                )

    async def _on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        properties = message.header.properties
        request_id = properties.correlation_id or ""
        future = self._pending.pop(request_id, None)
        if future is None or future.done():
            logger.debug("dropped a reply nobody waits for (%s)", request_id)
            return
        answer = contract.invoke_answer(
            {"headers": properties.headers, "content_type": properties.content_type},
            message.body,
            request_id,
        )
        future.set_result(Response(answer.status, answer.fields, answer.body))

    async def close(self) -> None:
        await self.link.close()
        self._on_lost()

    # Routing --------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Reply:
        if request.path == "/metrics" and request.method == "GET":
            return self.metrics.render()
        operation = match_operation(request)
        if operation is None or operation == INDEX:
            return unknown_operation(request)
        kind, raw_name = operation
        types: tuple[str, ...] = _STREAM_TYPES if kind == STREAM else _SYNC_TYPES
        if kind == ASYNC:
            request = as_event(request)
            types = (headers.EVENT,)
        call = read_invoke(
            request,
            raw_name,
            types,
            kind if kind != "Invoke" else "InvokeFunction",
            function_arn=self._function_arn,
            known=None,
            accepting=self._in_flight.accepting,
        )
        if isinstance(call, Response):
            return call
        if call.invocation_type == headers.DRY_RUN:
            work = self._dry_run(call)
        elif call.invocation_type == headers.EVENT:
            work = self._event(call, b'{"Status": 202}' if kind == ASYNC else b"")
        else:
            work = self._request_response(call, stream=kind == STREAM)
        return asyncio.ensure_future(self._tracked(call, work))

    async def _tracked(self, call: InvokeCall, work: asyncio.Future[Response] | object) -> Response:
        self._in_flight.started()
        started = time.monotonic()
        response: Response | None = None
        try:
            response = await work  # type: ignore[misc]
        except Exception as exc:  # never a hang or a bare 500
            logger.exception("gateway request failed")
            response = service_error(errors.SERVICE_EXCEPTION, f"the gateway failed: {exc}")
        finally:
            self._in_flight.finished()
            if response is not None:
                elapsed = time.monotonic() - started
                self.metrics.answered(call.name, call.invocation_type, response.status, elapsed)
        assert response is not None
        return response

    # Invocation types -----------------------------------------------------------------------------
    async def _request_response(self, call: InvokeCall, stream: bool) -> Response:
        if await self._channel.get() is None:
            return _not_connected()
        request_id = _request_id(call, self._pending)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future  # before publishing: a fast reply finds it
        message = contract.request_message(
            call.name,
            request_id,
            call.request.payload,
            client_context=call.request.client_context,
            trace_id=call.request.trace_id,
            log_tail=call.request.log_tail,
            timestamp=time.time(),
            expiration=self._reply_timeout,
        )
        refused = await self._publish(call, message)
        if refused is not None:
            self._pending.pop(request_id, None)
            return refused
        try:
            response = await asyncio.wait_for(future, self._reply_timeout)
        except asyncio.TimeoutError:
            return service_error(
                errors.SERVICE_EXCEPTION,
                f"no reply for {request_id} within {self._reply_timeout:g} s (--reply-timeout)",
            )
        finally:
            self._pending.pop(request_id, None)
        return _as_event_stream(response) if stream else response

    async def _event(self, call: InvokeCall, body: bytes) -> Response:
        request_id = _request_id(call, self._pending)
        message = contract.event_message(
            call.name,
            request_id,
            call.request.payload,
            accepted_at=time.time(),
            trace_id=call.request.trace_id,
        )
        refused = await self._publish(call, message)
        if refused is not None:
            return refused
        return Response(202, (("Content-Type", _JSON), (headers.AMZN_REQUEST_ID, request_id)), body)

    async def _dry_run(self, call: InvokeCall) -> Response:
        connection = self.link.connection
        if connection is None:
            return _not_connected()
        channel = await connection.channel()
        try:
            await channel.queue_declare(call.name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return _not_found(call)
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        return Response(204, ((headers.AMZN_REQUEST_ID, str(uuid.uuid4())),))

    async def _publish(self, call: InvokeCall, message: contract.Outgoing) -> Response | None:
        """Publish with ``mandatory`` and confirms; the error to answer, or None once confirmed."""
        channel = await self._channel.get()
        if channel is None:
            return _not_connected()
        try:
            await publish(channel, message, mandatory=True)
        except aiormq.exceptions.PublishError:
            return _not_found(call)
        except Exception as exc:
            logger.warning(
                "could not publish to %s: %s", message.routing_key, self.link.describe(exc)
            )
            return service_error(
                errors.SERVICE_EXCEPTION,
                f"the broker did not take the request: {self.link.describe(exc)}",
            )
        return None


def _request_id(call: InvokeCall, pending: Container[str]) -> str:
    """The SDK's invocation id, which its retries keep (so a function sees a retry as one), or
    a fresh one when it is absent, odd, or already waiting here."""
    sdk_id = call.sdk_invocation_id
    if _SDK_ID.fullmatch(sdk_id) and sdk_id not in pending:
        return sdk_id
    return str(uuid.uuid4())


def _not_found(call: InvokeCall) -> Response:
    return service_error(
        errors.RESOURCE_NOT_FOUND, f"Function not found: {call.request.invoked_arn}"
    )


def _not_connected() -> Response:
    return service_error(
        errors.SERVICE_EXCEPTION,
        "the gateway is not connected to the broker; try again",
        (headers.RETRY_AFTER, "1"),
    )


def _as_event_stream(response: Response) -> Response:
    """A buffered answer as ``InvokeWithResponseStream`` frames: one chunk, then the end."""
    if response.status != 200:
        return response
    fields = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
    function_error = any(k == headers.FUNCTION_ERROR for k, _ in fields)
    frames = bytearray()
    if function_error:
        try:
            body = json.loads(response.body)
        except (ValueError, RecursionError):
            body = {}
        body = body if isinstance(body, dict) else {}
        complete = eventstream.InvokeComplete(
            str(body.get("errorType") or errors.RUNTIME_UNKNOWN), str(body.get("errorMessage", ""))
        )
    else:
        for frame in eventstream.encode_payload_chunks(response.body):
            frames += frame
        complete = eventstream.InvokeComplete()
    frames += complete.encode()
    return Response(
        200, (("Content-Type", "application/vnd.amazon.eventstream"), *fields), bytes(frames)
    )
