"""What one execution environment writes about its phases, and where it goes.

Each line goes to up to three places: the function's log stream (:class:`LogSink`: function
output, START / END / REPORT, platform lines), the caller's log tail (:class:`LogTail`, when it
asked for one) and the Telemetry API subscribers (:class:`TelemetryHub`).  The record formats
follow https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html and
https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html.
"""

from __future__ import annotations

from lambdakit.emulator.config import FunctionConfig
from lambdakit.emulator.invocation import Invocation, InvocationResult
from lambdakit.emulator.log_tail import LogTail
from lambdakit.emulator.logs import LogSink, Report
from lambdakit.emulator.telemetry import TelemetryHub


class PhaseLog:
    """The log stream, log tail and telemetry of one environment."""

    __slots__ = ("_name", "_sink", "_tails", "_version", "tail", "telemetry")

    def __init__(self, sink: LogSink, function: FunctionConfig, telemetry: TelemetryHub) -> None:
        self._sink = sink
        self._name = function.name
        self._version = function.version
        self.telemetry = telemetry
        self.tail = LogTail()
        #: Managed Instances: the tails of invocations in flight that asked for one, by request id.
        self._tails: dict[str, LogTail] = {}

    def output(self, kind: str, line: str) -> None:
        """A line a process wrote (``kind``: ``function`` or ``extension``)."""
        stored = self._sink.function_line(self._name, line)
        self.tail.add(stored)
        if self._tails:
            # Several invocations at once: a line is theirs when it names their request id
            # (Managed Instances runtimes log JSON with "requestId").
            for request_id, tail in self._tails.items():
                if request_id in line:
                    tail.add(stored)
        self.telemetry.line(kind, line)

    def platform(self, message: str, request_id: str = "") -> None:
        self.tail.add(self._sink.platform(self._name, message, request_id))

    def init_start(self) -> None:
        self.telemetry.init_start(self._name, self._version)

    def init_done(self, duration_ms: float) -> None:
        self.telemetry.init_done(duration_ms)

    def init_failed(
        self, status: str, error_type: str = "", duration_ms: float | None = None
    ) -> None:
        """``INIT_REPORT`` of an Init that failed (``status``: ``error`` or ``timeout``)."""
        fields = [] if duration_ms is None else [f"Init Duration: {duration_ms:.2f} ms"]
        fields += ["Phase: init", f"Status: {status}"]
        if error_type:
            fields.append(f"Error Type: {error_type}")
        self._sink.platform(self._name, "INIT_REPORT " + "\t".join(fields))

    def start(self, invocation: Invocation) -> None:
        """START, and the tail's beginning when the caller wants one."""
        request_id = invocation.request_id
        self.tail.begin(invocation.request.log_tail)
        self.tail.add(self._sink.start(self._name, request_id, self._version))
        self.telemetry.start(request_id, self._version)

    def responded(self, request_id: str, result: InvocationResult, elapsed_ms: float) -> None:
        self.telemetry.runtime_done(request_id, result.ok, elapsed_ms, len(result.body))

    def end(self, invocation: Invocation, report: Report) -> None:
        """END and REPORT; a result held for the tail goes to its caller now."""
        self.tail.add(self._sink.end(self._name, invocation.request_id))
        self.tail.add(self._sink.report(self._name, report))
        self.tail.release(invocation)
        self.telemetry.report(report)

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

    def settle_of(self, invocation: Invocation, result: InvocationResult) -> None:
        """Deliver the result now, or hold it until END and REPORT are in its tail."""
        tail = self._tails.get(invocation.request_id)
        if tail is None:
            invocation.resolve(result)
        else:
            tail.settle(invocation, result)

    def platform_of(self, invocation: Invocation, message: str) -> None:
        line = self._sink.platform(self._name, message, invocation.request_id)
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
        self.telemetry.report(report)

    def flush(self) -> None:
        self._sink.flush()
