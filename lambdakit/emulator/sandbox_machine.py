"""The decisions of one execution environment, with no I/O: events in, typed outcomes out.

Theory of operation
-------------------
A :class:`SandboxMachine` holds two lifecycles from :mod:`lambdakit.emulator.lifecycle`: the
environment's phases (``SANDBOX_TRANSITIONS``: Init, Invoke, Shutdown as Lambda runs them,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html) and its runtime's
own state (``RUNTIME_TRANSITIONS``: what the Runtime API allows next,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).  Every method is one event:
a Runtime API call, the pool assigning an invocation, a failure.  It moves both tables and
returns what the call means (:class:`Delivered`, :data:`HELD`, :class:`Accepted`,
:class:`UnknownRequest`, :class:`WrongState`, :data:`GONE`); it never touches a socket, a
process, a clock or a log.  The I/O shell (:mod:`lambdakit.emulator.sandbox`) feeds it and acts
on its outcomes; :mod:`lambdakit.emulator.runtime_api` alone turns them into HTTP.

A phase ends when the runtime and every extension wait in ``next``; the shell asks
:meth:`SandboxMachine.phase_over` after each such call and gets :data:`INIT_ENDED`,
:class:`InvokeEnded` or None.  A failure (timeout, a process exiting, a stop) moves the
environment to ``STOPPING`` and hands back the invocation it cut off.  A move the tables do not
allow raises :class:`~lambdakit.emulator.lifecycle.IllegalTransition`: that is a bug in the shell,
never a runtime's misbehaviour (those get outcomes).
"""

from __future__ import annotations

from typing import Final, TypeAlias

from lambdakit.emulator.invocation import (
    Invocation,
    InvocationResult,
    function_error,
    platform_error,
)
from lambdakit.emulator.lifecycle import (
    RUNTIME_TRANSITIONS,
    SANDBOX_TRANSITIONS,
    Lifecycle,
    RuntimeEvent,
    RuntimeState,
    SandboxEvent,
    SandboxState,
)
from lambdakit.emulator.values import value


@value
class Delivered:
    """The runtime gets this invocation's event now."""

    invocation: Invocation
    deadline_ms: int


@value
class Held:
    """The ``GET next`` waits until an invocation is assigned."""


@value
class Accepted:
    """The call was applied; ``invocation`` is the one it concerned, if any."""

    invocation: Invocation | None = None


@value
class UnknownRequest:
    """The request id is not the invocation in flight (Runtime API 400 ``InvalidRequestID``)."""

    request_id: str


@value
class Expired:
    """Managed Instances: the result of an invocation that already timed out (410
    ``InvokeTimeout``, once; later calls for it are unknown)."""

    request_id: str


@value
class WrongState:
    """The call is not allowed now (Runtime API 403 ``InvalidStateTransition``), in RIE's words."""

    current: str
    wanted: str


@value
class Gone:
    """The environment is shutting down: the runtime should exit (500 ``Runtime.Unknown``)."""


@value
class InitEnded:
    """Init is over: the environment is idle."""


@value
class InvokeEnded:
    """The invoke phase of ``invocation`` is over: the environment is idle."""

    invocation: Invocation


@value
class InitFailure:
    """Why an environment never became ready; becomes the waiting invocation's error."""

    error_type: str
    detail: str
    #: The runtime's own ``/init/error`` body, passed through unchanged when present.
    body: bytes = b""

    def result_for(self, request_id: str) -> InvocationResult:
        if self.body:
            return function_error(self.body, self.error_type)
        return platform_error(self.error_type, request_id, self.detail)


HELD: Final = Held()
GONE: Final = Gone()
ACCEPTED: Final = Accepted()
INIT_ENDED: Final = InitEnded()

NextOutcome: TypeAlias = Delivered | Held | WrongState | Gone
ResultOutcome: TypeAlias = Accepted | UnknownRequest | WrongState | Expired
PhaseEnd: TypeAlias = InitEnded | InvokeEnded

# Runtime states in InvalidStateTransition messages, as AWS's RIE words them.
RUNTIME_STATE_NAMES: Final = {
    RuntimeState.STARTED: "Started",
    RuntimeState.WAITING: "Ready",
    RuntimeState.ASSIGNED: "Running",
    RuntimeState.INVOKED: "Running",
    RuntimeState.STREAMING: "Running",
    RuntimeState.RESPONDED: "InvocationResponse",
    RuntimeState.FAILED: "InitError",
}
_OVER = frozenset({SandboxState.STOPPING, SandboxState.DEAD})


class SandboxMachine:
    """The environment's phase, its runtime's state and the invocation in flight."""

    __slots__ = ("_phase", "_runtime", "current", "deadline_ms")

    def __init__(self, name: str) -> None:
        self._phase: Lifecycle[SandboxState, SandboxEvent] = Lifecycle(
            f"sandbox {name}", SANDBOX_TRANSITIONS, SandboxState.STARTING
        )
        self._runtime: Lifecycle[RuntimeState, RuntimeEvent] = Lifecycle(
            f"runtime of {name}", RUNTIME_TRANSITIONS, RuntimeState.STARTED
        )
        #: The invocation of the current invoke phase (None between phases).
        self.current: Invocation | None = None
        self.deadline_ms = 0

    @property
    def state(self) -> SandboxState:
        return self._phase.state

    @property
    def runtime_state(self) -> RuntimeState:
        return self._runtime.state

    @property
    def over(self) -> bool:
        """Stopping or dead: no call of the runtime is applied any more."""
        return self._phase.state in _OVER

    def allows(self, event: SandboxEvent) -> bool:
        return self._phase.allows(event)

    # Runtime API ----------------------------------------------------------------------------------
    def runtime_next(self) -> NextOutcome:
        """``GET next``: :data:`HELD` until work comes, or the event a dropped ``next`` missed."""
        if self._phase.state in _OVER:
            return GONE
        runtime = self._runtime
        if not runtime.allows(RuntimeEvent.NEXT):
            return WrongState(RUNTIME_STATE_NAMES[runtime.state], "Ready")
        if runtime.fire(RuntimeEvent.NEXT) is RuntimeState.INVOKED:
            invocation = self.current
            assert invocation is not None
            return Delivered(invocation, self.deadline_ms)
        return HELD

    def runtime_result(self, request_id: str) -> Accepted | UnknownRequest | WrongState:
        """``/response`` (buffered, or a stream's end) or ``/error`` for ``request_id``."""
        refusal = self._refusal(request_id, RuntimeEvent.RESULT)
        if refusal is not None:
            return refusal
        self._runtime.fire(RuntimeEvent.RESULT)
        self._phase.fire(SandboxEvent.RESULT)
        return Accepted(self.current)

    def stream_started(self, request_id: str) -> Accepted | UnknownRequest | WrongState:
        """A streamed ``/response`` for ``request_id`` began: its body follows."""
        refusal = self._refusal(request_id, RuntimeEvent.STREAM)
        if refusal is not None:
            return refusal
        self._runtime.fire(RuntimeEvent.STREAM)
        return Accepted(self.current)

    def init_error(self) -> Accepted | WrongState:
        """``/init/error``: Init failed; the environment goes down."""
        if self._phase.state is not SandboxState.STARTING or not self._runtime.allows(
            RuntimeEvent.INIT_ERROR
        ):
            return WrongState(RUNTIME_STATE_NAMES[self._runtime.state], "InitError")
        self._runtime.fire(RuntimeEvent.INIT_ERROR)
        self._phase.fire(SandboxEvent.INIT_ERROR)
        return ACCEPTED

    def _refusal(self, request_id: str, event: RuntimeEvent) -> UnknownRequest | WrongState | None:
        current = self.current
        if current is None or request_id != current.request_id:
            return UnknownRequest(request_id)
        if not self._runtime.allows(event):
            return WrongState(RUNTIME_STATE_NAMES[self._runtime.state], "InvocationResponse")
        return None

    # The pool and the phases ----------------------------------------------------------------------
    def invoke(self, invocation: Invocation, deadline_ms: int) -> None:
        """The pool assigned ``invocation``; :meth:`delivered` follows if the runtime waits."""
        self._phase.fire(SandboxEvent.INVOKE)
        self._runtime.fire(RuntimeEvent.INVOKE)
        invocation.dispatched()
        self.current = invocation
        self.deadline_ms = deadline_ms

    def delivered(self) -> Delivered:
        """The assigned event goes out on the held ``GET next``."""
        self._runtime.fire(RuntimeEvent.DELIVER)
        invocation = self.current
        assert invocation is not None
        return Delivered(invocation, self.deadline_ms)

    def phase_over(self, extensions_waiting: bool) -> PhaseEnd | None:
        """End Init or the invoke phase if the runtime and every extension wait in ``next``."""
        if self._runtime.state is not RuntimeState.WAITING or not extensions_waiting:
            return None
        state = self._phase.state
        if state is SandboxState.STARTING:
            self._phase.fire(SandboxEvent.READY)
            return INIT_ENDED
        if state is SandboxState.RESPONDED:
            self._phase.fire(SandboxEvent.READY)
            invocation, self.current = self.current, None
            assert invocation is not None
            return InvokeEnded(invocation)
        return None

    # Failures -------------------------------------------------------------------------------------
    def fail(self, event: SandboxEvent) -> Invocation | None:
        """TIMEOUT, EXIT or STOP: the environment goes down; returns the invocation cut off."""
        self._phase.fire(event)
        invocation, self.current = self.current, None
        return invocation

    def reaped(self) -> None:
        self._phase.fire(SandboxEvent.REAPED)

    def __repr__(self) -> str:
        return f"<SandboxMachine {self._phase.state.value}/{self._runtime.state.value}>"
