"""Every lifecycle of the local Lambda service, as transition tables.

Theory of operation
-------------------
An execution environment (a *sandbox*) moves through Lambda's phases
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html):

* ``STARTING``: its processes are spawned; Init runs until the runtime first calls ``next``.
* ``IDLE``: the runtime waits in ``GET next`` and no event is assigned: the pool may invoke it.
* ``INVOKING``: an event was handed to the runtime; no result yet.
* ``RESPONDED``: the runtime posted ``/response`` or ``/error``; the caller has its answer, but the
  Invoke phase lasts until the runtime calls ``next`` again (work after the response is billed).
* ``STOPPING``: the environment is being shut down or reset (timeout, crash, init error, spindown);
  its processes get SIGTERM and/or SIGKILL.
* ``DEAD``: every process of the environment has been reaped.

The *runtime* of a sandbox has its own machine inside those phases: ``STARTED`` (spawned, no
``next`` yet), ``WAITING`` (a ``GET next`` is held open), ``ASSIGNED`` (an event is assigned but the
held ``next`` went away with its connection: the runtime's retry gets it), ``INVOKED`` (the
runtime has its event), ``STREAMING`` (a streamed ``/response`` is arriving), ``RESPONDED``
(``/response`` or ``/error`` accepted; work after the response until the next ``next``) and
``FAILED`` (it reported ``/init/error``).  A call the table does not allow is answered with the
Runtime API's ``InvalidStateTransition`` (403), never applied.

An *extension* registered with the Extensions API is ``REGISTERED`` until its first
``event/next``, then ``WAITING`` for an event or ``BUSY`` with one (INVOKE or SHUTDOWN) until it
calls ``event/next`` again; ``FAILED`` after it reports ``init/error`` or ``exit/error``.  The
sandbox leaves ``STARTING`` or ``RESPONDED`` (event ``READY``) only when the runtime and every
extension are waiting in ``next``: that is when Lambda ends a phase and freezes the environment.

In Lambda Managed Instances mode an environment runs several invocations at once
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances.html): its phases are
``MANAGED_SANDBOX_TRANSITIONS`` (``IDLE`` with nothing in flight, ``INVOKING`` with something),
and each invocation in flight has its own *slot* (``SLOT_TRANSITIONS``): ``INVOKED``, then
``STREAMING`` for a streamed response, and ``RESPONDED`` or ``TIMED_OUT``.

An *invocation* is ``QUEUED`` (waiting for an environment), ``RUNNING`` (its event was handed to a
runtime) or ``DONE`` (a result, function error or platform error was delivered exactly once).

Each machine is a table keyed by (state, event); an event missing from the table for the current
state raises :class:`IllegalTransition`, naming the machine, the event and the state, so that no
component can move a lifecycle in a way this module does not spell out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar


class _Member(enum.Enum):
    """Members hashed by identity (each is a singleton): tables are looked up on every call, and
    ``Enum``'s own ``__hash__`` is a Python-level call."""

    __hash__ = object.__hash__


class SandboxState(_Member):
    STARTING = "starting"
    IDLE = "idle"
    INVOKING = "invoking"
    RESPONDED = "responded"
    STOPPING = "stopping"
    DEAD = "dead"


class SandboxEvent(_Member):
    #: The runtime and every extension are waiting in ``next``: the phase is over.
    READY = "ready"
    #: The pool handed the environment an invocation.
    INVOKE = "invoke"
    #: The runtime posted ``/response`` or ``/error`` for the current invocation.
    RESULT = "result"
    #: The runtime posted ``/init/error``.
    INIT_ERROR = "init-error"
    #: The invocation's deadline (or Init's limit) passed.
    TIMEOUT = "timeout"
    #: A process of the environment exited on its own.
    EXIT = "exit"
    #: The service asked the environment to shut down (idle reap, daemon stop).
    STOP = "stop"
    #: Every process has been reaped.
    REAPED = "reaped"


class RuntimeState(_Member):
    STARTED = "started"
    WAITING = "waiting"
    ASSIGNED = "assigned"
    INVOKED = "invoked"
    STREAMING = "streaming"
    RESPONDED = "responded"
    FAILED = "failed"


class RuntimeEvent(_Member):
    #: ``GET next``.
    NEXT = "next"
    #: The pool assigned an invocation.
    INVOKE = "invoke"
    #: The event went out on the held ``GET next``.
    DELIVER = "deliver"
    #: A streamed ``/response`` started.
    STREAM = "stream"
    #: ``/response`` (buffered or the end of a stream) or ``/error``.
    RESULT = "result"
    #: ``/init/error``.
    INIT_ERROR = "init-error"


class ExtensionState(_Member):
    #: Registered; has not asked for an event yet (still initializing).
    REGISTERED = "registered"
    #: Waiting in ``event/next``.
    WAITING = "waiting"
    #: Handling an event (INVOKE or SHUTDOWN) it was given.
    BUSY = "busy"
    #: Reported ``init/error`` or ``exit/error``; no further calls succeed.
    FAILED = "failed"


class ExtensionEvent(_Member):
    NEXT = "next"
    EVENT = "event"
    ERROR = "error"


class InvocationState(_Member):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class InvocationEvent(_Member):
    DISPATCH = "dispatch"
    RESOLVE = "resolve"


class SlotState(_Member):
    """One invocation in flight in a Managed Instances environment."""

    #: Its event went out on a worker's ``GET next``.
    INVOKED = "invoked"
    #: A streamed ``/response`` is arriving.
    STREAMING = "streaming"
    #: ``/response`` or ``/error`` was accepted.
    RESPONDED = "responded"
    #: Its deadline passed first.
    TIMED_OUT = "timed-out"


class SlotEvent(_Member):
    STREAM = "stream"
    RESULT = "result"
    TIMEOUT = "timeout"


S = SandboxState
E = SandboxEvent

SANDBOX_TRANSITIONS: Mapping[SandboxState, Mapping[SandboxEvent, SandboxState]] = {
    S.STARTING: {
        E.READY: S.IDLE,
        E.INIT_ERROR: S.STOPPING,
        E.TIMEOUT: S.STOPPING,
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
    },
    S.IDLE: {
        E.INVOKE: S.INVOKING,
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
    },
    S.INVOKING: {
        E.RESULT: S.RESPONDED,
        E.TIMEOUT: S.STOPPING,
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
    },
    S.RESPONDED: {
        E.READY: S.IDLE,
        E.TIMEOUT: S.STOPPING,
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
    },
    S.STOPPING: {
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
        E.TIMEOUT: S.STOPPING,
        E.REAPED: S.DEAD,
    },
    S.DEAD: {},
}

#: Lambda Managed Instances: several invocations at once, each with its own slot (below).  The
#: environment is IDLE with none in flight and INVOKING with some; a result or a timeout ends
#: one invocation, and READY marks the last one ending.  There is no RESPONDED phase: work a
#: worker does after its response is not tied to the invocation by the Runtime API.
MANAGED_SANDBOX_TRANSITIONS: Mapping[SandboxState, Mapping[SandboxEvent, SandboxState]] = {
    S.STARTING: SANDBOX_TRANSITIONS[S.STARTING],
    S.IDLE: SANDBOX_TRANSITIONS[S.IDLE],
    S.INVOKING: {
        E.INVOKE: S.INVOKING,
        E.RESULT: S.INVOKING,
        E.TIMEOUT: S.INVOKING,
        E.READY: S.IDLE,
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
    },
    # No invocation timer outlives the environment: no TIMEOUT while stopping.
    S.STOPPING: {
        E.EXIT: S.STOPPING,
        E.STOP: S.STOPPING,
        E.REAPED: S.DEAD,
    },
    S.DEAD: {},
}

SLOT_TRANSITIONS: Mapping[SlotState, Mapping[SlotEvent, SlotState]] = {
    SlotState.INVOKED: {
        SlotEvent.STREAM: SlotState.STREAMING,
        SlotEvent.RESULT: SlotState.RESPONDED,
        SlotEvent.TIMEOUT: SlotState.TIMED_OUT,
    },
    # An /error posted while the stream is still open settles the invocation first.
    SlotState.STREAMING: {
        SlotEvent.RESULT: SlotState.RESPONDED,
        SlotEvent.TIMEOUT: SlotState.TIMED_OUT,
    },
    SlotState.RESPONDED: {},
    SlotState.TIMED_OUT: {},
}

R = RuntimeState
RE = RuntimeEvent
RUNTIME_TRANSITIONS: Mapping[RuntimeState, Mapping[RuntimeEvent, RuntimeState]] = {
    R.STARTED: {RE.NEXT: R.WAITING, RE.INIT_ERROR: R.FAILED},
    # A second GET next is held beside the first (a client that timed out and asked again).
    R.WAITING: {RE.NEXT: R.WAITING, RE.INVOKE: R.ASSIGNED, RE.INIT_ERROR: R.FAILED},
    # A retried GET next takes the event its dropped predecessor missed.
    R.ASSIGNED: {
        RE.DELIVER: R.INVOKED,
        RE.NEXT: R.INVOKED,
        RE.STREAM: R.STREAMING,
        RE.RESULT: R.RESPONDED,
    },
    R.INVOKED: {RE.STREAM: R.STREAMING, RE.RESULT: R.RESPONDED},
    # An /error posted while the stream is still open settles the invocation first.
    R.STREAMING: {RE.RESULT: R.RESPONDED},
    R.RESPONDED: {RE.NEXT: R.WAITING},
    R.FAILED: {},
}

X = ExtensionState
EXTENSION_TRANSITIONS: Mapping[ExtensionState, Mapping[ExtensionEvent, ExtensionState]] = {
    # An event is queued for an extension until it waits in next: only WAITING takes one.
    X.REGISTERED: {
        ExtensionEvent.NEXT: X.WAITING,
        ExtensionEvent.ERROR: X.FAILED,
    },
    X.WAITING: {
        ExtensionEvent.NEXT: X.WAITING,
        ExtensionEvent.EVENT: X.BUSY,
        ExtensionEvent.ERROR: X.FAILED,
    },
    X.BUSY: {
        ExtensionEvent.NEXT: X.WAITING,
        ExtensionEvent.ERROR: X.FAILED,
    },
    X.FAILED: {},
}

INVOCATION_TRANSITIONS: Mapping[InvocationState, Mapping[InvocationEvent, InvocationState]] = {
    InvocationState.QUEUED: {
        InvocationEvent.DISPATCH: InvocationState.RUNNING,
        InvocationEvent.RESOLVE: InvocationState.DONE,
    },
    InvocationState.RUNNING: {InvocationEvent.RESOLVE: InvocationState.DONE},
    InvocationState.DONE: {},
}

StateT = TypeVar("StateT", bound=enum.Enum)
EventT = TypeVar("EventT", bound=enum.Enum)


class IllegalTransition(Exception):
    """An event arrived in a state whose table has no entry for it."""

    def __init__(self, machine: str, event: enum.Enum, state: enum.Enum) -> None:
        super().__init__(
            f"{machine}: event {event.value!r} is not allowed in state {state.value!r}"
        )
        self.machine = machine
        self.event = event
        self.state = state


class Lifecycle(Generic[StateT, EventT]):
    """The current state of one machine and the table that moves it."""

    __slots__ = ("_name", "_table", "state")

    def __init__(
        self, name: str, table: Mapping[StateT, Mapping[EventT, StateT]], initial: StateT
    ) -> None:
        self._name = name
        self._table = table
        self.state = initial

    def allows(self, event: EventT) -> bool:
        return event in self._table[self.state]

    def fire(self, event: EventT) -> StateT:
        """Move on ``event``; raise :class:`IllegalTransition` if the table forbids it."""
        try:
            self.state = self._table[self.state][event]
        except KeyError:
            raise IllegalTransition(self._name, event, self.state) from None
        return self.state

    def __repr__(self) -> str:
        return f"<{self._name} {self.state.value}>"
