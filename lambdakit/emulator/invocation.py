"""One invocation: what the caller sent, its identity and deadline, and how its result leaves.

Doors (the Invoke API, later Function URLs and queues) build an :class:`Invocation` from a
validated request and hand it to a pool; a sandbox dispatches it to a runtime and resolves it
exactly once with an :class:`InvocationResult`.  Nothing here knows about HTTP or processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

from lambdakit.emulator.lifecycle import (
    INVOCATION_TRANSITIONS,
    InvocationEvent,
    InvocationState,
    Lifecycle,
)
from lambdakit.emulator.values import value
from lambdakit.wire import errors


@value
class InvocationRequest:
    """What a door accepted: the payload and the context the runtime will see."""

    payload: bytes
    invoked_arn: str
    client_context: str = ""
    cognito_identity: str = ""
    tenant_id: str = ""
    trace_id: str = ""
    #: The caller asked for the log tail: the result waits for END and REPORT.
    log_tail: bool = False


@value
class InvocationResult:
    """How an invocation ended, as the caller sees it.

    ``function_error`` is empty for a success; otherwise it is the ``X-Amz-Function-Error``
    value (``Unhandled``) and ``body`` is the error JSON.  ``error_type`` names the error for
    logs and telemetry (the runtime's ``Lambda-Runtime-Function-Error-Type`` or a platform type).
    """

    body: bytes
    content_type: str = "application/json"
    function_error: str = ""
    error_type: str = ""
    #: Base64 of the invocation's last 4 KB of log (``X-Amz-Log-Type: Tail``).
    log_result: str = ""
    #: The body already went to the caller chunk by chunk (a streamed response).
    streamed: bool = False

    @property
    def ok(self) -> bool:
        return not self.function_error


def function_error(body: bytes, error_type: str) -> InvocationResult:
    return InvocationResult(body, "application/json", errors.UNHANDLED, error_type)


def platform_error(error_type: str, request_id: str, detail: str) -> InvocationResult:
    """A failure of the environment (timeout, crash, init failure) as Lambda reports it."""
    return function_error(errors.platform_error_body(error_type, request_id, detail), error_type)


class _RandomBytes:
    """``os.urandom`` read 4 KB at a time: every invocation needs 36 random bytes for its ids,
    and each ``os.urandom`` call is a ``getrandom`` system call."""

    __slots__ = ("_buffer", "_offset")

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        start = self._offset
        if start + size > len(self._buffer):
            self._buffer, start = os.urandom(4096), 0
        self._offset = start + size
        return self._buffer[start : start + size]


_random = _RandomBytes()


def new_request_id() -> str:
    """A random (version 4) UUID as Lambda's request ids are; ``str(uuid.uuid4())`` costs more."""
    raw = bytearray(_random.take(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    """An X-Ray trace header, as Lambda gives every invocation one."""
    random = _random.take(20).hex()
    return f"Root=1-{int(time.time()):08x}-{random[:24]};Parent={random[24:]};Sampled=0"


class StreamSink(Protocol):
    """A door that forwards a streamed response to its caller as it arrives."""

    def stream_start(self, content_type: str) -> None: ...

    def stream_chunk(self, data: bytes) -> None: ...

    def set_flow(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """Call ``pause`` while the caller reads slower than the runtime writes, then ``resume``."""
        ...


class Invocation:
    """One invocation in flight; resolved exactly once through ``on_done``."""

    __slots__ = ("_lifecycle", "_on_done", "accepted_at", "request", "request_id", "stream_sink")

    def __init__(
        self,
        request: InvocationRequest,
        on_done: Callable[[InvocationResult], None],
        request_id: str | None = None,
        stream_sink: StreamSink | None = None,
    ) -> None:
        self.request = request
        self.request_id = request_id or new_request_id()
        self.accepted_at = time.monotonic()
        self._on_done = on_done
        #: Where a streamed response goes as it arrives; None: the result carries it buffered.
        self.stream_sink = stream_sink
        self._lifecycle: Lifecycle[InvocationState, InvocationEvent] = Lifecycle(
            "invocation", INVOCATION_TRANSITIONS, InvocationState.QUEUED
        )

    @property
    def state(self) -> InvocationState:
        return self._lifecycle.state

    @property
    def done(self) -> bool:
        return self._lifecycle.state is InvocationState.DONE

    def dispatched(self) -> None:
        self._lifecycle.fire(InvocationEvent.DISPATCH)

    def resolve(self, result: InvocationResult) -> None:
        """Deliver the result to the door; a second call raises ``IllegalTransition``."""
        self._lifecycle.fire(InvocationEvent.RESOLVE)
        self._on_done(result)

    def __repr__(self) -> str:
        return f"<Invocation {self.request_id} {self.state.value}>"
