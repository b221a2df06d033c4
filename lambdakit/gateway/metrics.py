"""``GET /metrics`` of ``lambdakit gateway``: what it answered, by function, in Prometheus' format.

The gateway holds no environments, so it has no activity stream: its figures are its own
answers.  Each request that reached a function name is counted once, when its answer leaves, by
function, invocation type (RequestResponse, Event, DryRun) and HTTP status, and a synchronous
one's round trip through the broker goes into a histogram (the buckets of
:mod:`lambdakit.emulator.metrics`).  As there, plain numbers are kept per request and
``prometheus_client`` renders them only at scrape time
(https://prometheus.io/docs/instrumenting/exposition_formats/).

``lambdakit_gateway_requests_total`` (counter; labels function, type, status)
    Answers sent: 200 replies, 202 Events accepted, 404 for a function no queue takes (all
    under ``function="(not found)"``: clients may ask for any name), 500 for a reply that did
    not come within ``--reply-timeout`` or a lost broker, ...
``lambdakit_gateway_response_seconds`` (histogram; label function)
    RequestResponse round trips: from the request to the worker's reply.
``lambdakit_gateway_broker_connected`` (gauge)
    1 while the gateway's broker connection is open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from lambdakit.emulator.http import Response
from lambdakit.emulator.metrics import Histogram

#: The ``function`` label of answers for functions that do not exist (bounded series).
NOT_FOUND = "(not found)"


class GatewayMetrics:
    """The gateway's answers, counted as they leave."""

    def __init__(self, connected: Callable[[], bool]) -> None:
        self._connected = connected
        #: (function, invocation type, status) -> answers.
        self.answers: dict[tuple[str, str, int], int] = {}
        self.round_trips: dict[str, Histogram] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(self))

    def answered(self, function: str, invocation_type: str, status: int, seconds: float) -> None:
        if status == 404:  # any name may be asked for: those no queue takes share one series
            function = NOT_FOUND
        key = (function, invocation_type, status)
        self.answers[key] = self.answers.get(key, 0) + 1
        if invocation_type == "RequestResponse" and status == 200:
            histogram = self.round_trips.get(function)
            if histogram is None:
                histogram = self.round_trips[function] = Histogram()
            histogram.observe(seconds)

    def render(self) -> Response:
        return Response(
            200, (("Content-Type", CONTENT_TYPE_LATEST),), generate_latest(self._registry)
        )

    def families(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "lambdakit_gateway_requests",
            "Answers the gateway sent, by function, invocation type and HTTP status.",
            labels=("function", "type", "status"),
        )
        for (function, kind, status), count in sorted(self.answers.items()):
            requests.add_metric((function, kind, str(status)), count)
        round_trips = HistogramMetricFamily(
            "lambdakit_gateway_response_seconds",
            "RequestResponse round trips through the broker, to the worker's reply.",
            labels=("function",),
        )
        for function, histogram in sorted(self.round_trips.items()):
            round_trips.add_metric((function,), histogram.cumulative(), histogram.sum)
        connected = GaugeMetricFamily(
            "lambdakit_gateway_broker_connected",
            "1 while the broker connection is open.",
            value=1 if self._connected() else 0,
        )
        return (requests, round_trips, connected)


class _Collector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()
