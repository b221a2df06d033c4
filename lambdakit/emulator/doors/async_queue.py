"""Event (asynchronous) invocations: stored durably, run on the function's environments, retried.

https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html

Theory of operation
-------------------
The Invoke API hands an accepted Event to :meth:`EventQueue.accept`, which commits it to the
:class:`~lambdakit.emulator.event_store.EventStore` before the caller gets its 202.  One
dispatcher task per function takes due events from the store, at most the function's capacity
at a time (its environments times the invocations each runs at once), and submits them to the
same pool as synchronous invocations (a full pool puts the event back, untouched, for later: a
backlog never drops events).  A success deletes the event and sends an on-success record; a
function error, timeout or crash is retried ``max_retry_attempts`` times with a backoff that
doubles from ``retry_backoff``; then, or once the event is older than ``max_event_age``, it is
marked failed and sent to the on-failure destination.  Destination records have Lambda's shape
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html); a
destination is another function of this service (``function:NAME``, run as an Event) or a
``.jsonl`` file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import json
import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from lambdakit.emulator.activity import EventRetried
from lambdakit.emulator.config import FunctionConfig, ServiceConfig
from lambdakit.emulator.event_store import EventStore, StoredEvent
from lambdakit.emulator.invocation import Invocation, InvocationRequest, InvocationResult
from lambdakit.emulator.pool import Pool, Throttled

logger = logging.getLogger("lambdakit.events")

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
#: Longest a dispatcher sleeps before looking at the store again, seconds.
_POLL = 1.0


def _timestamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data.decode("utf-8", "replace")


def destination_record(
    request_id: str,
    payload: bytes,
    attempts: int,
    function_arn: str,
    condition: str,
    result: InvocationResult | None,
) -> dict[str, object]:
    """A destination record in Lambda's shape."""
    response_context: dict[str, object] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if result is not None and result.function_error:
        response_context["functionError"] = result.function_error
    record: dict[str, object] = {
        "version": "1.0",
        "timestamp": _timestamp(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": _json_or_text(payload),
        "responseContext": response_context,
    }
    if result is not None:
        record["responsePayload"] = _json_or_text(result.body)
    return record


def append_record(path: str, data: bytes, what: str) -> None:
    """Append one destination record to a ``.jsonl`` file; a failure is logged, not raised."""
    try:
        with open(path, "ab") as file:
            file.write(data + b"\n")
    except OSError as exc:
        logger.error("cannot write %s to %s: %s", what, path, exc)


class EventQueue:
    """Every function's Event invocations, from acceptance to their destinations."""

    def __init__(self, service: ServiceConfig, pools: Mapping[str, Pool], state_dir: Path) -> None:
        self._service = service
        self._pools = pools
        self.store = EventStore(state_dir)
        recovered = self.store.recover()
        if recovered:
            logger.info("%d event(s) interrupted by the last stop will run again", recovered)
        self._wake = {name: asyncio.Event() for name in pools}
        self._running: dict[str, dict[str, StoredEvent]] = {name: {} for name in pools}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    # EventAcceptor ----------------------------------------------------------------------------
    def accept(self, function: str, request: InvocationRequest) -> str:
        """Commit the event to disk and wake its dispatcher; return its request id."""
        request_id = str(uuid.uuid4())
        self.store.add(request_id, function, request.payload, request.invoked_arn, request.trace_id)
        self._wake[function].set()
        return request_id

    # Dispatch ------------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._dispatch(name), name=f"events {name}") for name in self._pools
        ]

    async def _dispatch(self, name: str) -> None:
        pool = self._pools[name]
        function = pool.function
        wake = self._wake[name]
        while not self._stopping:
            wake.clear()
            capacity = function.capacity - len(self._running[name])
            if capacity > 0:
                for event in self.store.due(name, time.time(), capacity):
                    if not self._run(pool, event):
                        break
            next_due = self.store.next_due(name)
            delay = _POLL if next_due is None else min(_POLL, max(0.0, next_due - time.time()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), max(delay, 0.005))

    def _run(self, pool: Pool, event: StoredEvent) -> bool:
        """Submit one due event; False if the pool is full (it stays pending)."""
        function = pool.function
        if time.time() - event.accepted_at > function.max_event_age:
            self.store.fail(event.request_id, EVENT_AGE_EXCEEDED, "event too old")
            self._destination(function, event, EVENT_AGE_EXCEEDED, None)
            return True
        self.store.start(event.request_id)
        started = dataclasses.replace(event, attempts=event.attempts + 1)
        request = InvocationRequest(event.payload, event.invoked_arn, trace_id=event.trace_id)
        invocation = Invocation(
            request,
            functools.partial(self._finished, function, started),
            event.request_id,  # retries keep the event's request id, as on Lambda
        )
        self._running[function.name][event.request_id] = started
        self._idle.clear()
        try:
            pool.submit(invocation)
        except Throttled:
            del self._running[function.name][event.request_id]
            self._settle_idle()
            self.store.unstart(event.request_id)
            return False
        logger.debug(
            "event %s -> %s (attempt %d)", event.request_id, function.name, started.attempts
        )
        return True

    def _finished(
        self, function: FunctionConfig, event: StoredEvent, result: InvocationResult
    ) -> None:
        self._running[function.name].pop(event.request_id, None)
        self._settle_idle()
        self._wake[function.name].set()
        if self._stopping and not result.ok:
            self.store.unstart(event.request_id)  # cut off by the stop: run it after a restart
            return
        if result.ok:
            self.store.succeed(event.request_id)
            self._destination(function, event, SUCCESS, result)
            return
        error = f"{result.error_type}: {result.body[:500].decode('utf-8', 'replace')}"
        if event.attempts <= function.max_retry_attempts:
            delay = function.retry_backoff * 2 ** (event.attempts - 1)
            self.store.retry(event.request_id, time.time() + delay, error)
            self._pools[function.name].activity.publish(
                EventRetried(function.name, event.request_id, event.attempts, time.time())
            )
            logger.info(
                "event %s failed (%s), retry %d in %.0f s",
                event.request_id,
                result.error_type,
                event.attempts,
                delay,
            )
            return
        self.store.fail(event.request_id, RETRIES_EXHAUSTED, error)
        logger.warning("event %s failed %d time(s), giving up", event.request_id, event.attempts)
        self._destination(function, event, RETRIES_EXHAUSTED, result)

    def _destination(
        self,
        function: FunctionConfig,
        event: StoredEvent,
        condition: str,
        result: InvocationResult | None,
    ) -> None:
        target = function.on_success if condition == SUCCESS else function.on_failure
        if not target:
            return
        record = destination_record(
            event.request_id,
            event.payload,
            event.attempts,
            self._service.function_arn(function.name),
            condition,
            result,
        )
        data = json.dumps(record).encode()
        if target.startswith("function:"):
            name = target.split(":", 1)[1]
            arn = self._service.function_arn(name)
            self.accept(name, InvocationRequest(data, arn, trace_id=event.trace_id))
            return
        append_record(target, data, f"the {condition} record of event {event.request_id}")

    def _settle_idle(self) -> None:
        if not any(self._running.values()):
            self._idle.set()

    # Stop -------------------------------------------------------------------------------------
    async def stop(self, timeout: float) -> None:
        """Stop dispatching; wait up to ``timeout`` for events in flight, keep the rest."""
        self._stopping = True
        for wake in self._wake.values():
            wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def close(self) -> None:
        """After the environments stopped: whatever is still marked running runs next time."""
        for running in self._running.values():
            for request_id in list(running):
                self.store.unstart(request_id)
            running.clear()
        self.store.close()
