"""The Invoke API port's other paths: ``/metrics`` and the live view under ``/_lambdakit/``.

Both read the service's :class:`~lambdakit.emulator.activity.Activity` stream (see
docs/observability.md).  Invoke API paths all begin with a date (``/2015-03-31/``,
``/2014-11-13/``, ``/2021-11-15/``), so one character decides the common case.
"""

from __future__ import annotations

from lambdakit.emulator.http import Handler, Reply, Request, Response
from lambdakit.emulator.live_view import LiveView
from lambdakit.emulator.metrics import Metrics

_VIEW = "/_lambdakit"
_METRICS = "/metrics"
_NOT_ALLOWED = Response(405, (("Allow", "GET"), ("Content-Type", "text/plain")), b"GET only\n")


class WithObservers:
    """The Invoke API, with ``GET /metrics`` and the live view beside it."""

    __slots__ = ("_invoke_api", "_metrics", "_view")

    def __init__(self, invoke_api: Handler, metrics: Metrics, view: LiveView) -> None:
        self._invoke_api = invoke_api
        self._metrics = metrics
        self._view = view

    def __call__(self, request: Request) -> Reply:
        path = request.path
        if path[1:2].isdigit():
            return self._invoke_api(request)
        if path == _METRICS:
            return self._metrics.render() if request.method == "GET" else _NOT_ALLOWED
        if path == _VIEW or path.startswith(_VIEW + "/"):
            return self._view(request)
        return self._invoke_api(request)
