"""The service's Prometheus figures (``GET /metrics`` on the Invoke API port).

Theory of operation
-------------------
:class:`Metrics` subscribes to the service's :class:`~lambdakit.emulator.activity.Activity`
stream, the one the log stream, the caller's log tail and Telemetry API subscribers are written
from, and to nothing else (not to output lines): no figure is counted a second time or another
way.  On each event it updates plain Python numbers and lists, per function: a counter is an
``int``, a histogram a list of counts (one per bucket, found by :func:`bisect.bisect_left` into
the fixed :data:`BUCKETS`, in seconds) and a sum.  ``prometheus_client`` is used only at scrape
time: a collector turns those numbers into metric families, registered in a private
``CollectorRegistry`` (never the process-wide default one) and rendered in the Prometheus text
format (https://prometheus.io/docs/instrumenting/exposition_formats/).  Events and scrapes both
run on the event loop's thread, so nothing is locked.

Memory stays bounded: the moment an invocation started and the moment it answered are kept by
request id only until its :class:`~lambdakit.emulator.activity.InvocationEnded`; should that
event be lost, each of these two maps holds at most ``pending_limit`` entries (past the limit its
oldest tenth is dropped, with a warning).  An environment is forgotten when it is ``dead``.

Metrics (label ``function`` on all of them)
--------------------------------------------
``lambdakit_invocations_total`` (counter)
    Invocations that ended (END and REPORT), whatever their outcome, as Lambda's ``Invocations``
    metric counts them; it is the count of ``lambdakit_invocation_duration_seconds``.
``lambdakit_invocation_errors_total`` (counter, label ``status``: error, timeout, failure)
    Invocations that ended with a function error (the runtime posted ``/error``), a timeout or a
    platform failure (a crash, a stop): the ``status`` of their ``InvocationEnded``.
``lambdakit_throttles_total`` (counter)
    Invocations refused with 429 (every environment busy and the queue full).
``lambdakit_cold_starts_total`` (counter)
    Invocations that were the first of their environment.
``lambdakit_event_retries_total`` (counter)
    Event invocations that failed and will be tried again.
``lambdakit_amqp_messages_total`` (counter, label ``outcome``; only with ``serve --amqp``)
    What the AMQP door did with the messages of the function's queue: ``run``, then
    ``replied``, ``retried``, ``failed``, ``handed-back`` or ``lost``; or, without running,
    ``refused``, ``dropped`` or ``expired`` (see ``lambdakit.emulator.activity.AMQP_OUTCOMES``).
``lambdakit_init_duration_seconds`` (histogram, label ``result``: ok, error)
    The Init phase of each environment (INIT_REPORT / ``initDurationMs``).
``lambdakit_response_seconds`` (histogram)
    From START to the runtime's answer: the time a synchronous caller waits once an environment
    has its invocation (not the time queued before it).
``lambdakit_after_response_seconds`` (histogram)
    From the runtime's answer to END: the work after the response, until the runtime and every
    extension asked for their next event (not counted in Managed Instances mode, where an
    invocation ends with its answer).
``lambdakit_invocation_duration_seconds`` (histogram)
    The ``Duration`` of each REPORT.
``lambdakit_environments`` (gauge, label ``state``: starting, idle, busy, after-response, frozen,
stopping)
    The environments of each function by the state each last reported, or its invocations
    imply (on demand: busy from START, after-response from the answer, idle from END).
``lambdakit_event_queue_depth`` (gauge)
    Event invocations accepted and waiting for an environment (or for their retry), read from the
    ``backlog`` callable at scrape time (the event store's ``pending_by_function``).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import islice

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from lambdakit.emulator import activity
from lambdakit.emulator.activity import (
    AFTER_RESPONSE,
    BUSY,
    IDLE,
    Activity,
    ActivityEvent,
    AmqpMessage,
    EnvironmentState,
    EventRetried,
    InitEnded,
    InvocationEnded,
    InvocationResponded,
    InvocationStarted,
    Throttled,
)
from lambdakit.emulator.http import Response

logger = logging.getLogger("lambdakit.metrics")

#: Upper bounds of the histograms' buckets, in seconds (``+Inf`` is implied): from a warm
#: invocation's fraction of a millisecond to Lambda's longest timeout.
BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
)
#: Their ``le`` labels: for these bounds Go's formatting, which Prometheus expects, is ``repr``'s.
_LE = (*(repr(bound) for bound in BUCKETS), "+Inf")

#: The statuses of ``lambdakit_invocation_errors_total`` (always shown, 0 when none).
ERROR_STATUSES = ("error", "timeout", "failure")
#: The states of ``lambdakit_environments`` (always shown, 0 when none; ``dead`` is dropped).
LIVE_STATES = tuple(state for state in activity.STATES if state != activity.DEAD)
#: Request ids kept, per map, while their invocation runs (see the module's docstring).
PENDING_LIMIT = 10_000
_DEAD = activity.DEAD


class Histogram:
    """Counts per bucket of :data:`BUCKETS` (the last one is ``+Inf``) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: the first bound >= seconds, as Prometheus' ``le`` (less or equal) wants.
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """The ``(le, count)`` pairs of the exposition format, cumulative."""
        buckets: list[tuple[str, float]] = []
        total = 0
        for le, count in zip(_LE, self.counts, strict=True):
            total += count
            buckets.append((le, total))
        return buckets


class FunctionFigures:
    """What :class:`Metrics` keeps for one function."""

    __slots__ = (
        "after_response",
        "amqp",
        "cold_starts",
        "duration",
        "errors",
        "init_error",
        "init_ok",
        "response",
        "retries",
        "throttles",
    )

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}
        self.throttles = 0
        self.cold_starts = 0
        self.retries = 0
        #: What the AMQP door did with the function's messages, by outcome (empty without it).
        self.amqp: dict[str, int] = {}
        self.init_ok = Histogram()
        self.init_error = Histogram()
        self.response = Histogram()
        self.after_response = Histogram()
        #: REPORT durations; its count is the number of invocations.
        self.duration = Histogram()


class Metrics:
    """Per-function figures kept from the activity stream, rendered for Prometheus on demand."""

    def __init__(
        self,
        activity: Activity,
        backlog: Callable[[], Mapping[str, int]] | None = None,
        *,
        pending_limit: int = PENDING_LIMIT,
    ) -> None:
        self._backlog = backlog
        self._limit = pending_limit
        self.functions: dict[str, FunctionFigures] = {}
        #: The last state of each live environment, by environment name (the event itself).
        #: Environment -> (function, state): the last EnvironmentState, or what its on-demand
        #: invocations imply (busy, after-response, idle).
        self._environments: dict[str, tuple[str, str]] = {}
        #: Managed Instances environments: they report busy and idle themselves.
        self._concurrent: set[str] = set()
        #: ``InvocationStarted.at`` of invocations without a response yet, by request id.
        self._started: dict[str, float] = {}
        #: ``InvocationResponded.at`` of invocations not ended yet, by request id.
        self._responded: dict[str, float] = {}
        self._registry = CollectorRegistry()
        self._registry.register(_Collector(self))
        # Every kind but NextCalled and OutputLine, which no figure counts.
        self.unsubscribe = activity.subscribe_kinds(
            {
                InvocationStarted: self._started_event,
                InvocationResponded: self._responded_event,
                InvocationEnded: self._ended_event,
                EnvironmentState: self._on_rare_event,
                InitEnded: self._on_rare_event,
                Throttled: self._on_rare_event,
                EventRetried: self._on_rare_event,
                AmqpMessage: self._on_rare_event,
            }
        )

    @property
    def pending(self) -> int:
        """Request ids held until their invocation ends (bounded by ``pending_limit`` twice)."""
        return len(self._started) + len(self._responded)

    def render(self) -> Response:
        """``GET /metrics``: every figure in the Prometheus text format."""
        body = generate_latest(self._registry)
        return Response(200, (("Content-Type", CONTENT_TYPE_LATEST),), body)

    # The hot path: a few comparisons, dictionary operations and additions per event, no call
    # that can be avoided (a histogram's observe is written out where it is hot) -----------------
    def _new_figures(self, function: str) -> FunctionFigures:
        figures = self.functions[function] = FunctionFigures()
        return figures

    def _started_event(self, event: InvocationStarted) -> None:
        if event.concurrent:
            self._concurrent.add(event.environment)
        else:
            self._environments[event.environment] = (event.function, BUSY)
        started = self._started
        started[event.request_id] = event.at
        if len(started) > self._limit:
            self._trim(started, "started")
        if event.cold:
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            figures.cold_starts += 1

    def _responded_event(self, event: InvocationResponded) -> None:
        if event.environment not in self._concurrent:
            self._environments[event.environment] = (event.function, AFTER_RESPONSE)
        at = self._started.pop(event.request_id, None)
        if at is not None:
            responded = self._responded
            responded[event.request_id] = event.at
            if len(responded) > self._limit:
                self._trim(responded, "responded")
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            now = event.at
            seconds = now - at if now > at else 0.0  # 0 if the wall clock went back
            histogram = figures.response
            histogram.counts[bisect_left(BUCKETS, seconds)] += 1
            histogram.sum += seconds

    def _ended_event(self, event: InvocationEnded) -> None:
        if event.after_response_known:  # on demand: idle again (see implied_state)
            self._environments[event.environment] = (event.function, IDLE)
        figures = self.functions.get(event.function) or self._new_figures(event.function)
        at = self._responded.pop(event.request_id, None)
        if at is None:  # no answer (a timeout, a crash): it never reached "responded"
            self._started.pop(event.request_id, None)
        elif event.after_response_known:  # not in Managed Instances mode
            now = event.at
            seconds = now - at if now > at else 0.0
            histogram = figures.after_response
            histogram.counts[bisect_left(BUCKETS, seconds)] += 1
            histogram.sum += seconds
        seconds = event.duration_ms / 1000
        histogram = figures.duration
        histogram.counts[bisect_left(BUCKETS, seconds)] += 1
        histogram.sum += seconds
        status = event.status
        if status != "success":
            figures.errors[status] = figures.errors.get(status, 0) + 1

    def _on_rare_event(self, event: ActivityEvent) -> None:
        """Events that are not part of every invocation."""
        if isinstance(event, EnvironmentState):
            if event.state == _DEAD:
                self._environments.pop(event.environment, None)
                self._concurrent.discard(event.environment)
            else:
                self._environments[event.environment] = (event.function, event.state)
        elif isinstance(event, InitEnded):
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            init = figures.init_error if event.error_type else figures.init_ok
            init.observe(event.duration_ms / 1000)
        elif isinstance(event, Throttled):
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            figures.throttles += 1
        elif isinstance(event, EventRetried):
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            figures.retries += 1
        elif isinstance(event, AmqpMessage):
            figures = self.functions.get(event.function) or self._new_figures(event.function)
            figures.amqp[event.outcome] = figures.amqp.get(event.outcome, 0) + 1

    def _trim(self, pending: dict[str, float], name: str) -> None:
        """Drop the oldest entries of a map past its limit, down to 90% of it (so that a stream
        that lost its ends pays this once per tenth of the limit, not on every event)."""
        excess = len(pending) - self._limit + self._limit // 10
        for request_id in list(islice(pending, excess)):
            del pending[request_id]
        logger.warning(
            "metrics: over %d invocations %s but never ended (events lost?); forgot the oldest %d",
            self._limit,
            name,
            excess,
        )

    # Scrape time --------------------------------------------------------------------------------
    def families(self) -> Iterable[Metric]:
        """The metric families, built from the figures kept (what the collector yields)."""
        functions = sorted(self.functions.items())
        invocations = CounterMetricFamily(
            "lambdakit_invocations",
            "Invocations that ended (END and REPORT), whatever their outcome.",
            labels=("function",),
        )
        errors = CounterMetricFamily(
            "lambdakit_invocation_errors",
            "Invocations that ended with a function error, a timeout or a platform failure.",
            labels=("function", "status"),
        )
        throttles = CounterMetricFamily(
            "lambdakit_throttles",
            "Invocations refused with 429: every environment busy and the queue full.",
            labels=("function",),
        )
        cold_starts = CounterMetricFamily(
            "lambdakit_cold_starts",
            "Invocations that were the first of their environment.",
            labels=("function",),
        )
        retries = CounterMetricFamily(
            "lambdakit_event_retries",
            "Event invocations that failed and will be tried again.",
            labels=("function",),
        )
        init = HistogramMetricFamily(
            "lambdakit_init_duration_seconds",
            "Init phase of each environment, by result (ok, error).",
            labels=("function", "result"),
        )
        response = HistogramMetricFamily(
            "lambdakit_response_seconds",
            "From START to the runtime's response.",
            labels=("function",),
        )
        after_response = HistogramMetricFamily(
            "lambdakit_after_response_seconds",
            "From the runtime's response to END (work after the response).",
            labels=("function",),
        )
        duration = HistogramMetricFamily(
            "lambdakit_invocation_duration_seconds",
            "Duration of each invocation, as its REPORT line gives it.",
            labels=("function",),
        )
        amqp = CounterMetricFamily(
            "lambdakit_amqp_messages",
            "Messages of the function's queue the AMQP door ran, answered, refused, dropped, "
            "handed back to the broker, or finished after their connection was lost.",
            labels=("function", "outcome"),
        )
        for name, figures in functions:
            invocations.add_metric((name,), figures.duration.count)
            for outcome, count in sorted(figures.amqp.items()):
                amqp.add_metric((name, outcome), count)
            for status in sorted({*ERROR_STATUSES, *figures.errors}):
                errors.add_metric((name, status), figures.errors.get(status, 0))
            throttles.add_metric((name,), figures.throttles)
            cold_starts.add_metric((name,), figures.cold_starts)
            retries.add_metric((name,), figures.retries)
            for result, histogram in (("ok", figures.init_ok), ("error", figures.init_error)):
                init.add_metric((name, result), histogram.cumulative(), histogram.sum)
            for family, histogram in (
                (response, figures.response),
                (after_response, figures.after_response),
                (duration, figures.duration),
            ):
                family.add_metric((name,), histogram.cumulative(), histogram.sum)
        yield from (invocations, errors, throttles, cold_starts, retries)
        if amqp.samples:
            yield amqp
        yield from (init, response, after_response, duration)
        yield self._environment_family()
        if self._backlog is not None:
            yield self._queue_family(self._backlog)

    def _environment_family(self) -> GaugeMetricFamily:
        counts: dict[tuple[str, str], int] = {}
        for key in self._environments.values():
            counts[key] = counts.get(key, 0) + 1
        names = {*self.functions, *(function for function, _ in counts)}
        family = GaugeMetricFamily(
            "lambdakit_environments",
            "Environments by the state each last reported.",
            labels=("function", "state"),
        )
        for name in sorted(names):
            for state in sorted({*LIVE_STATES, *(s for f, s in counts if f == name)}):
                family.add_metric((name, state), counts.get((name, state), 0))
        return family

    def _queue_family(self, backlog: Callable[[], Mapping[str, int]]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "lambdakit_event_queue_depth",
            "Event invocations waiting for an environment or for their retry.",
            labels=("function",),
        )
        try:
            depths = dict(backlog())
        except Exception:  # the scrape still shows everything else
            logger.warning("metrics: the Event queue's depth could not be read", exc_info=True)
            return family
        for name in sorted({*self.functions, *depths}):
            family.add_metric((name,), depths.get(name, 0))
        return family


class _Collector(Collector):
    """The registry's view of a :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()
