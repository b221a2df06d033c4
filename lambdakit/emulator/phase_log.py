"""What one execution environment writes about its phases, and where it goes.

Each line goes to up to three places: the function's log stream (:class:`LogSink`: function
output, START / END / REPORT, platform lines), the caller's log tail (:class:`LogTail`, when it
asked for one) and the Telemetry API subscribers (:class:`TelemetryHub`).  The record formats
follow https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html.  The same moments
go to the service's :class:`~lambdakit.emulator.activity.Activity` stream, once, for the metrics
and the live view; so do the environment's changes of state (:meth:`PhaseLog.state`).
"""

from __future__ import annotations

import re
import time

from lambdakit.emulator import activity as events
from lambdakit.emulator.activity import Activity
from lambdakit.emulator.config import FunctionConfig
from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.emulator.log_tail import LogTail
from lambdakit.emulator.logs import LogSink, Report
from lambdakit.emulator.telemetry import TelemetryHub

#: The request id in a JSON log line (``"requestId": "..."``, as Lambda's JSON format has it).
_REQUEST_ID = re.compile(r'"requestId":\s*"([^"]+)"')


class PhaseLog:
    """The log stream, log tail and telemetry of one environment."""

    __slots__ = (
        "_activity",
        "_cold",
        "_current",
        "_environment",
        "_errors",
        "_name",
        "_sink",
        "_tails",
        "_version",
        "tail",
        "telemetry",
    )

    def __init__(
        self,
        sink: LogSink,
        function: FunctionConfig,
        telemetry: TelemetryHub,
        activity: Activity,
        environment: str,
    ) -> None:
        self._sink = sink
        self._name = function.name
        self._version = function.version
        self.telemetry = telemetry
        self._activity = activity
        self._environment = environment
        self.tail = LogTail()
        #: Managed Instances: the tails of invocations in flight that asked for one, by request id.
        self._tails: dict[str, LogTail] = {}
        #: The invocation whose phase runs (one at a time; "" between), for output lines.
        self._current = ""
        self._cold = True
        #: Invocations in their phase whose runtime answered with an error: its type.
        self._errors: dict[str, str] = {}

    # The activity stream ----------------------------------------------------------------------
    def state(self, state: str) -> None:
        """The environment moved to ``state`` (:data:`lambdakit.emulator.activity.STATES`)."""
        self._activity.publish(
            events.EnvironmentState(self._name, self._environment, state, time.time())
        )

    def next_called(self, request_id: str, who: str) -> None:
        """The runtime (``who`` empty) or an extension asked for its next event after working
        on ``request_id``."""
        self._activity.publish(
            events.NextCalled(self._name, self._environment, request_id, who, time.time())
        )

    def _line(self, kind: str, line: str, request_id: str) -> None:
        self._activity.publish(
            events.OutputLine(self._name, self._environment, request_id, kind, line, time.time())
        )

    def _started(self, invocation: Invocation, concurrent: bool = False) -> None:
        cold, self._cold = self._cold, False
        self._activity.publish(
            events.InvocationStarted(
                self._name,
                self._environment,
                invocation.request_id,
                time.time(),
                cold,
                len(invocation.request.payload),
                concurrent,
            )
        )

    def _ended(self, report: Report, error_type: str, after_response_known: bool = True) -> None:
        status = report.status
        if error_type and status == "success":
            status = "error"  # the function's error (its REPORT says nothing of it, as Lambda's)
        self._activity.publish(
            events.InvocationEnded(
                self._name,
                self._environment,
                report.request_id,
                time.time(),
                status,
                report.duration_ms,
                report.billed_duration_ms,
                report.max_memory_used_mb,
                report.init_duration_ms,
                after_response_known,
            )
        )

    def output(self, kind: str, line: str) -> None:
        """A line a process wrote (``kind``: ``function`` or ``extension``)."""
        stored = self._sink.function_line(self._name, line)
        self.tail.add(stored)
        if self._activity.wants_lines:
            request_id = self._current
            if not request_id:
                # Several invocations at once: a JSON line names its own (Managed Instances).
                named = _REQUEST_ID.search(line)
                request_id = named.group(1) if named else ""
            self._line(kind, line, request_id)
        if self._tails:
            # Several invocations at once: a line is theirs when it names their request id
            # (Managed Instances runtimes log JSON with "requestId").
            for request_id, tail in self._tails.items():
                if request_id in line:
                    tail.add(stored)
        self.telemetry.line(kind, line)

    def platform(self, message: str, request_id: str = "") -> None:
        self.tail.add(self._sink.platform(self._name, message, request_id))
        if self._activity.wants_lines:
            self._line("platform", message, request_id or self._current)

    def init_start(self) -> None:
        self.telemetry.init_start(self._name, self._version)

    def init_done(self, duration_ms: float) -> None:
        self.telemetry.init_done(duration_ms)
        self._activity.publish(
            events.InitEnded(self._name, self._environment, time.time(), duration_ms)
        )

    def init_failed(
        self, status: str, error_type: str = "", duration_ms: float | None = None
    ) -> None:
        """``INIT_REPORT`` of an Init that failed (``status``: ``error`` or ``timeout``)."""
        fields = [] if duration_ms is None else [f"Init Duration: {duration_ms:.2f} ms"]
        fields += ["Phase: init", f"Status: {status}"]
        if error_type:
            fields.append(f"Error Type: {error_type}")
        self._sink.platform(self._name, "INIT_REPORT " + "\t".join(fields))
        failure = error_type or ("Sandbox.Timedout" if status == "timeout" else "Unknown")
        self._activity.publish(
            events.InitEnded(
                self._name, self._environment, time.time(), duration_ms or 0.0, failure
            )
        )

    def start(self, invocation: Invocation) -> None:
        """START, and the tail's beginning when the caller wants one."""
        request_id = invocation.request_id
        self._current = request_id
        self.tail.begin(invocation.request.log_tail)
        self.tail.add(self._sink.start(self._name, request_id, self._version))
        self.telemetry.start(request_id, self._version)
        self._started(invocation)

    def responded(self, request_id: str, result: InvocationResult, elapsed_ms: float) -> None:
        self.telemetry.runtime_done(request_id, result.ok, elapsed_ms, len(result.body))
        if not result.ok:
            self._errors[request_id] = result.error_type or "Unhandled"
        self._activity.publish(
            events.InvocationResponded(
                self._name,
                self._environment,
                request_id,
                time.time(),
                "" if result.ok else (result.error_type or "Unhandled"),
                len(result.body),
            )
        )

    def end(self, invocation: Invocation, report: Report) -> None:
        """END and REPORT; a result held for the tail goes to its caller now."""
        self.tail.add(self._sink.end(self._name, invocation.request_id))
        self.tail.add(self._sink.report(self._name, report))
        self.tail.release(invocation)
        error_type = self._errors.pop(invocation.request_id, "")
        self.telemetry.report(report, error_type)
        self._current = ""
        self._ended(report, error_type)

    # Several invocations at once (Managed Instances) -----------------------------------------
    def start_of(self, invocation: Invocation) -> None:
        """START of one of several invocations in flight."""
        request_id = invocation.request_id
        line = self._sink.start(self._name, request_id, self._version)
        if invocation.request.log_tail:
            tail = self._tails[request_id] = LogTail()
            tail.begin(True)
            tail.add(line)
        self.telemetry.start(request_id, self._version)
        self._started(invocation, concurrent=True)

    def settle_of(self, invocation: Invocation, result: InvocationResult) -> None:
        """Deliver the result now, or hold it until END and REPORT are in its tail."""
        tail = self._tails.get(invocation.request_id)
        if tail is None:
            invocation.resolve(result)
        else:
            tail.settle(invocation, result)

    def platform_of(self, invocation: Invocation, message: str) -> None:
        line = self._sink.platform(self._name, message, invocation.request_id)
        if self._activity.wants_lines:
            self._line("platform", message, invocation.request_id)
        tail = self._tails.get(invocation.request_id)
        if tail is not None:
            tail.add(line)

    def end_of(self, invocation: Invocation, report: Report) -> None:
        """END and REPORT of one of several invocations; a held result goes out now."""
        request_id = invocation.request_id
        end = self._sink.end(self._name, request_id)
        line = self._sink.report(self._name, report)
        tail = self._tails.pop(request_id, None)
        if tail is not None:
            tail.add(end)
            tail.add(line)
            tail.release(invocation)
        error_type = self._errors.pop(request_id, "")
        self.telemetry.report(report, error_type)
        self._ended(report, error_type, after_response_known=False)

    def flush(self) -> None:
        self._sink.flush()
