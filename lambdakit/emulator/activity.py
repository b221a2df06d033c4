"""What happens in the service, as one stream of events: the source of metrics and the live view.

Theory of operation
-------------------
Each environment's :class:`~lambdakit.emulator.phase_log.PhaseLog` already writes everything an
invocation goes through (START, the runtime's answer, END and REPORT, INIT_REPORT, every output
line) to the log stream, the caller's log tail and Telemetry API subscribers; it publishes the
same moments here, once, as frozen events.  The pool adds throttles, the Event queue its retries,
the AMQP door what it does with each message.
Whatever wants to know subscribes: the Prometheus figures (``/metrics``), the live view's event
stream (``/_lambdakit/events``) and ``lambdakit top`` read this and nothing else, so no figure is
counted twice or in two ways.

An invocation's phases follow from its events
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): from
:class:`InvocationStarted` to :class:`InvocationResponded` the caller waits; from there to
:class:`InvocationEnded` is the work after the response, during which the runtime and each
extension ask for their next event (:class:`NextCalled`) — the phase ends when the last one has.
An on-demand environment's invocation events move it too, without an event of their own (three
fewer per invocation): :class:`InvocationStarted` makes it busy, :class:`InvocationResponded`
after-response and :class:`InvocationEnded` idle.  :class:`EnvironmentState` tells the rest: it
starts, is idle after Init, is frozen, stops, is gone; and a Managed Instances environment
(``concurrent`` starts) says itself when it becomes busy and idle again.

Publishing costs a few object creations and calls per invocation; output lines, the bulk, are
published only while some subscriber asked for them (``lines=True``).  Times are wall-clock
seconds (``time.time()``) so that a browser can place them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from typing import Any, TypeAlias

from lambdakit.emulator.values import value

logger = logging.getLogger("lambdakit.activity")


# Environment states, as the live view and the metrics name them.
STARTING = "starting"
IDLE = "idle"
BUSY = "busy"
AFTER_RESPONSE = "after-response"
FROZEN = "frozen"
STOPPING = "stopping"
DEAD = "dead"
STATES = (STARTING, IDLE, BUSY, AFTER_RESPONSE, FROZEN, STOPPING, DEAD)


@value
class EnvironmentState:
    """An environment moved to ``state`` (one of :data:`STATES`)."""

    function: str
    environment: str
    state: str
    at: float


@value
class InitEnded:
    """Init is over: ``error_type`` is empty when it succeeded."""

    function: str
    environment: str
    at: float
    duration_ms: float
    error_type: str = ""


@value
class InvocationStarted:
    """An environment took an invocation (START); ``cold`` when it is its first."""

    function: str
    environment: str
    request_id: str
    at: float
    cold: bool
    payload_bytes: int
    #: In a Managed Instances environment (several at once): its state is not this one's.
    concurrent: bool = False


@value
class InvocationResponded:
    """The runtime answered: the caller has its response (``error_type`` set for an error)."""

    function: str
    environment: str
    request_id: str
    at: float
    error_type: str
    response_bytes: int


@value
class NextCalled:
    """During an invocation's phase, the runtime (``who`` empty) or an extension asked for its
    next event: its work after the response is over."""

    function: str
    environment: str
    request_id: str
    who: str
    at: float


@value
class InvocationEnded:
    """END and REPORT: the invoke phase is over (``status``: success, error, timeout, failure)."""

    function: str
    environment: str
    request_id: str
    at: float
    status: str
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    #: False where the end is the response itself (Managed Instances: the Runtime API cannot
    #: tell which worker does what afterwards), so there is no after-response time to count.
    after_response_known: bool = True


@value
class OutputLine:
    """A line of the log stream: ``kind`` is function, extension or platform."""

    function: str
    environment: str
    request_id: str
    kind: str
    line: str
    at: float


@value
class Throttled:
    """An invocation was refused with 429: every environment busy and the queue full."""

    function: str
    at: float


@value
class EventRetried:
    """An Event invocation failed and will be tried again (``attempt`` is the one that failed)."""

    function: str
    request_id: str
    attempt: int
    at: float


#: What the AMQP door did with a message of a function's queue: ``run`` (an environment took it),
#: then one of ``replied`` (a RequestResponse answered, or an Event ended well), ``retried`` or
#: ``failed`` (an Event that failed: another attempt queued, or given up), ``handed-back`` (to the
#: broker: a reply it did not take, or a stop), ``lost`` (its connection went away first: the
#: broker requeued it); or, without running, ``refused`` or ``dropped`` (malformed; ``dropped``
#: also for an answer that cannot be written) and ``expired`` (an Event past its maximum age).
AMQP_OUTCOMES = (
    "run",
    "replied",
    "retried",
    "failed",
    "handed-back",
    "lost",
    "refused",
    "dropped",
    "expired",
)


@value
class AmqpMessage:
    """What the AMQP door (``serve --amqp``) did with a message: one of :data:`AMQP_OUTCOMES`."""

    function: str
    outcome: str
    at: float


ActivityEvent: TypeAlias = (
    EnvironmentState
    | InitEnded
    | InvocationStarted
    | InvocationResponded
    | NextCalled
    | InvocationEnded
    | OutputLine
    | Throttled
    | EventRetried
    | AmqpMessage
)
Subscriber: TypeAlias = Callable[[ActivityEvent], None]
#: Every kind of event, in the order of the union above.
EVENT_KINDS: tuple[type[ActivityEvent], ...] = (
    EnvironmentState,
    InitEnded,
    InvocationStarted,
    InvocationResponded,
    NextCalled,
    InvocationEnded,
    OutputLine,
    Throttled,
    EventRetried,
    AmqpMessage,
)


def implied_state(event: ActivityEvent, concurrent: Container[str]) -> str:
    """The state an on-demand invocation's event puts its environment in ("": none).

    ``concurrent`` holds the Managed Instances environments, which say busy and idle themselves.
    """
    if isinstance(event, InvocationStarted):
        return "" if event.concurrent else BUSY
    if isinstance(event, InvocationResponded):
        return "" if event.environment in concurrent else AFTER_RESPONSE
    if isinstance(event, InvocationEnded) and event.after_response_known:
        return IDLE
    return ""


class Activity:
    """The service's event stream: publish once, every subscriber gets each event in order.

    A subscriber names a handler for each kind of event it wants (:meth:`subscribe_kinds`), so
    publishing an event is one lookup by its type and a call per handler: a subscriber neither
    receives the kinds it ignores nor asks each event what it is.
    """

    __slots__ = ("_by_kind", "_registrations")

    def __init__(self) -> None:
        self._registrations: tuple[dict[type[ActivityEvent], Subscriber], ...] = ()
        self._by_kind: dict[type[ActivityEvent], tuple[Subscriber, ...]] = {}
        self._rebuild()

    @property
    def wants_lines(self) -> bool:
        """Whether some subscriber wants :class:`OutputLine` events (else do not build them)."""
        return bool(self._by_kind[OutputLine])

    def subscribe(self, subscriber: Subscriber, lines: bool = False) -> Callable[[], None]:
        """Deliver every event to ``subscriber`` (output lines too if ``lines``); returns the
        function that ends the subscription."""
        kinds = EVENT_KINDS if lines else tuple(k for k in EVENT_KINDS if k is not OutputLine)
        return self.subscribe_kinds({kind: subscriber for kind in kinds})

    def subscribe_kinds(
        self, handlers: Mapping[type[ActivityEvent], Callable[[Any], None]]
    ) -> Callable[[], None]:
        """Deliver each event of a kind ``handlers`` names to that handler (which takes events
        of that kind); returns the function that ends the subscription, of every kind at once."""
        unknown = [kind for kind in handlers if kind not in EVENT_KINDS]
        if unknown:
            raise TypeError(f"not a kind of activity event: {unknown!r}")
        registration = dict(handlers)
        self._registrations = (*self._registrations, registration)
        self._rebuild()

        def unsubscribe() -> None:
            self._drop(registration)

        return unsubscribe

    def publish(self, event: ActivityEvent) -> None:
        handlers = self._by_kind.get(type(event))
        if handlers is None:  # a subclass of a kind: its kind's handlers (looked up once)
            kind = next((k for k in EVENT_KINDS if isinstance(event, k)), None)
            handlers = self._by_kind[type(event)] = self._by_kind.get(kind, ()) if kind else ()
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # one broken consumer must not break an invocation
                logger.exception("activity subscriber %r failed; unsubscribed", handler)
                for registration in self._registrations:
                    if handler in registration.values():
                        self._drop(registration)

    def _drop(self, registration: dict[type[ActivityEvent], Subscriber]) -> None:
        self._registrations = tuple(r for r in self._registrations if r is not registration)
        self._rebuild()

    def _rebuild(self) -> None:
        registrations = self._registrations
        self._by_kind = {
            kind: tuple(r[kind] for r in registrations if kind in r) for kind in EVENT_KINDS
        }
