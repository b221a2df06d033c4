"""The decisions of one Lambda Managed Instances environment, with no I/O.

Theory of operation
-------------------
In Managed Instances mode an execution environment runs up to ``limit`` invocations at once
(``AWS_LAMBDA_MAX_CONCURRENCY``): the runtime runs that many workers, each looping on
``GET next`` and answering by request id, and the Runtime API "can accept concurrent ``/next``
and ``/response`` requests up to the configured limit"
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances.html).

The Runtime API does not say which worker calls, so the machine does not model workers: it
holds the ``GET next`` calls waiting (opaque :class:`Waiter` tokens the shell made) and one
*slot* per invocation in flight, keyed by request id, each its own lifecycle
(``SLOT_TRANSITIONS``).  The environment's phases are ``MANAGED_SANDBOX_TRANSITIONS``.  An
invocation is assigned only to a waiting worker (:meth:`ManagedMachine.invoke` hands back the
waiter to deliver on), so the environment has room for work when a worker waits and fewer than
``limit`` invocations are in flight (:attr:`ManagedMachine.free_slots`).

Failures touch what they must: a timeout ends that invocation only, as on Lambda ("Lambda marks
that specific invocation as failed but doesn't interrupt other running invocations",
https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-execution-environment.html);
its worker's late result gets :class:`Expired` (410 ``InvokeTimeout``) once.  A process exiting or
a stop takes every invocation in flight down with the environment.  Like
:class:`~lambdakit.emulator.sandbox_machine.SandboxMachine`, every method is one event, returns a
typed outcome, and a move the tables do not allow raises
:class:`~lambdakit.emulator.lifecycle.IllegalTransition`.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from lambdakit.emulator.invocation import Invocation
from lambdakit.emulator.lifecycle import (
    MANAGED_SANDBOX_TRANSITIONS,
    SLOT_TRANSITIONS,
    Lifecycle,
    SandboxEvent,
    SandboxState,
    SlotEvent,
    SlotState,
)
from lambdakit.emulator.sandbox_machine import (
    ACCEPTED,
    GONE,
    HELD,
    INIT_ENDED,
    Accepted,
    Expired,
    Gone,
    Held,
    InitEnded,
    ResultOutcome,
    UnknownRequest,
    WrongState,
)
from lambdakit.emulator.values import value

_OVER = frozenset({SandboxState.STOPPING, SandboxState.DEAD})
#: Timed-out request ids remembered for their late results (AWS's RIE keeps a cache too).
_EXPIRED_KEPT = 1024


class Waiter(Protocol):
    """A worker's ``GET next`` held open (the shell's object)."""

    @property
    def alive(self) -> bool:
        """False once its connection went away."""
        ...


class Slot:
    """One invocation in flight and its lifecycle."""

    __slots__ = ("deadline_ms", "invocation", "lifecycle")

    def __init__(self, invocation: Invocation, deadline_ms: int) -> None:
        self.invocation = invocation
        self.deadline_ms = deadline_ms
        self.lifecycle: Lifecycle[SlotState, SlotEvent] = Lifecycle(
            f"invocation {invocation.request_id}", SLOT_TRANSITIONS, SlotState.INVOKED
        )


@value
class Assigned:
    """Deliver ``slot``'s event on ``waiter``."""

    slot: Slot
    waiter: Waiter


@value
class Ended:
    """An invocation left the environment; ``idle`` when it was the last in flight."""

    invocation: Invocation
    idle: bool


class ManagedMachine:
    """The phase of a Managed Instances environment, its waiting workers and its slots."""

    __slots__ = ("_expired", "_phase", "_waiting", "init_failed", "limit", "slots")

    def __init__(self, name: str, limit: int) -> None:
        self._phase: Lifecycle[SandboxState, SandboxEvent] = Lifecycle(
            f"sandbox {name}", MANAGED_SANDBOX_TRANSITIONS, SandboxState.STARTING
        )
        self.limit = limit
        self._waiting: deque[Waiter] = deque()
        #: The invocations in flight, by request id.
        self.slots: dict[str, Slot] = {}
        #: A worker reported ``/init/error``: the others' reports are refused.
        self.init_failed = False
        #: Invocations that timed out, oldest first: the first late result for one is told so.
        self._expired: dict[str, bool] = {}

    @property
    def state(self) -> SandboxState:
        return self._phase.state

    @property
    def over(self) -> bool:
        return self._phase.state in _OVER

    def allows(self, event: SandboxEvent) -> bool:
        return self._phase.allows(event)

    @property
    def waiting(self) -> int:
        """Workers waiting in ``GET next`` whose connection is still there."""
        self._drop_gone()
        return len(self._waiting)

    @property
    def free_slots(self) -> int:
        """How many invocations the environment can take now."""
        if self._phase.state not in (SandboxState.IDLE, SandboxState.INVOKING):
            return 0
        return min(self.waiting, self.limit - len(self.slots))

    def _drop_gone(self) -> None:
        waiting = self._waiting
        while waiting and not waiting[0].alive:
            waiting.popleft()
        if any(not w.alive for w in waiting):
            self._waiting = deque(w for w in waiting if w.alive)

    # Runtime API ----------------------------------------------------------------------------------
    def runtime_next(self, waiter: Waiter) -> Held | WrongState | Gone:
        """A worker's ``GET next``: held until an invocation is assigned to it."""
        if self._phase.state in _OVER:
            return GONE
        if self.init_failed:
            return WrongState("InitError", "Ready")
        # No cap on waiting workers (AWS's RIE has none either): the limit is on what is in
        # flight, which free_slots enforces.
        self._waiting.append(waiter)
        return HELD

    def runtime_result(self, request_id: str) -> ResultOutcome:
        """``/response`` (buffered, or a stream's end) or ``/error`` for ``request_id``."""
        outcome = self._slot_event(request_id, SlotEvent.RESULT)
        if isinstance(outcome, Accepted):
            self._phase.fire(SandboxEvent.RESULT)
        return outcome

    def stream_started(self, request_id: str) -> ResultOutcome:
        return self._slot_event(request_id, SlotEvent.STREAM)

    def _slot_event(self, request_id: str, event: SlotEvent) -> ResultOutcome:
        slot = self.slots.get(request_id)
        if slot is None:
            if self._expired.pop(request_id, False):
                return Expired(request_id)
            return UnknownRequest(request_id)
        if not slot.lifecycle.allows(event):
            # A second /response while one is in progress (AWS's RIE answers these 400 too).
            return UnknownRequest(request_id)
        slot.lifecycle.fire(event)
        return Accepted(slot.invocation)

    def init_error(self) -> Accepted | WrongState:
        """``/init/error``: Init failed; the first report counts, the environment goes down."""
        if self._phase.state is not SandboxState.STARTING or self.init_failed:
            return WrongState("InitError" if self.init_failed else "Ready", "InitError")
        self.init_failed = True
        self._phase.fire(SandboxEvent.INIT_ERROR)
        return ACCEPTED

    # The pool and the phases ----------------------------------------------------------------------
    def phase_over(self, extensions_waiting: bool) -> InitEnded | None:
        """Init ends once a worker and every extension wait in ``next``."""
        if self._phase.state is SandboxState.STARTING and extensions_waiting and self.waiting > 0:
            self._phase.fire(SandboxEvent.READY)
            return INIT_ENDED
        return None

    def invoke(self, invocation: Invocation, deadline_ms: int) -> Assigned:
        """The pool assigned ``invocation``; it goes to the longest-waiting worker."""
        if self.free_slots <= 0:
            raise RuntimeError(f"no free slot for {invocation.request_id} in {self!r}")
        self._phase.fire(SandboxEvent.INVOKE)
        invocation.dispatched()
        slot = Slot(invocation, deadline_ms)
        self.slots[invocation.request_id] = slot
        return Assigned(slot, self._waiting.popleft())

    def end(self, request_id: str) -> Ended:
        """A responded invocation leaves the environment."""
        slot = self.slots.pop(request_id)
        return Ended(slot.invocation, self._maybe_idle())

    def time_out(self, request_id: str) -> Ended | None:
        """``request_id``'s deadline passed; None if it already ended."""
        slot = self.slots.get(request_id)
        if slot is None or not slot.lifecycle.allows(SlotEvent.TIMEOUT):
            return None
        slot.lifecycle.fire(SlotEvent.TIMEOUT)
        self._phase.fire(SandboxEvent.TIMEOUT)
        del self.slots[request_id]
        self._expired[request_id] = True
        if len(self._expired) > _EXPIRED_KEPT:
            del self._expired[next(iter(self._expired))]
        return Ended(slot.invocation, self._maybe_idle())

    def _maybe_idle(self) -> bool:
        if self.slots or self._phase.state is not SandboxState.INVOKING:
            return False
        self._phase.fire(SandboxEvent.READY)
        return True

    # Failures -------------------------------------------------------------------------------------
    def fail(self, event: SandboxEvent) -> tuple[Invocation, ...]:
        """TIMEOUT (of Init), EXIT or STOP: the environment goes down with all in flight."""
        self._phase.fire(event)
        cut_off = tuple(slot.invocation for slot in self.slots.values())
        self.slots.clear()
        return cut_off

    def release_waiters(self) -> list[Waiter]:
        """The environment is going down: the held ``GET next`` calls, to be let go."""
        waiting, self._waiting = list(self._waiting), deque()
        return waiting

    def reaped(self) -> None:
        self._phase.fire(SandboxEvent.REAPED)

    def __repr__(self) -> str:
        return (
            f"<ManagedMachine {self._phase.state.value} {len(self.slots)}/{self.limit} in flight,"
            f" {len(self._waiting)} waiting>"
        )
