"""The function log stream: runtime output lines and the platform's START / END / REPORT lines.

Text lines follow CloudWatch Logs as Lambda writes them
(https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html); the JSON forms
follow Lambda's JSON log format, whose platform records share the Telemetry API's shapes
(https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html).  Lines are
buffered and written once per event-loop iteration, so a busy service makes one ``write`` for
many lines: a flush waits up to :data:`FLUSH_DELAY` so that START, END and REPORT of a short
invocation leave together.

A runtime joins the lines of one multi-line record (a traceback) with ``\\r``, as Lambda's
CloudWatch form keeps it one event (:mod:`lambdakit.runtime.logs`).  A terminal would draw each
line over the last, so the text format prints them as lines, the later ones indented
(:data:`CONTINUATION`); the JSON format, the log tail and the Telemetry API keep Lambda's form.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
from typing import BinaryIO

from lambdakit.emulator.values import value

#: Longest a line waits in the buffer, seconds.
FLUSH_DELAY = 0.01
#: What starts each later line of a multi-line record in the text format.
CONTINUATION = "  "


@value
class Report:
    """The figures of one REPORT line."""

    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str = "success"

    @property
    def billed_duration_ms(self) -> int:
        return max(1, math.ceil(self.duration_ms))

    def metrics(self) -> dict[str, float]:
        """The ``metrics`` of a ``platform.report`` record (JSON logs and the Telemetry API)."""
        metrics: dict[str, float] = {
            "durationMs": round(self.duration_ms, 3),
            "billedDurationMs": self.billed_duration_ms,
            "memorySizeMB": self.memory_size_mb,
            "maxMemoryUsedMB": self.max_memory_used_mb,
        }
        if self.init_duration_ms is not None:
            metrics["initDurationMs"] = round(self.init_duration_ms, 3)
        return metrics

    def record(self) -> dict[str, object]:
        """The ``platform.report`` record."""
        return {"requestId": self.request_id, "metrics": self.metrics(), "status": self.status}


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class LogSink:
    """Formats and writes the log stream of every function of the service."""

    def __init__(self, stream: BinaryIO, log_format: str = "text", tag_functions: bool = False):
        self._stream = stream
        self._json = log_format == "json"
        self._tag = tag_functions
        self._lines: list[str] = []
        self._scheduled = False

    # Writing --------------------------------------------------------------------------------------
    def _emit(self, function: str, line: str) -> None:
        if self._tag and not self._json:
            line = f"[{function}] {line}"
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode("utf-8", "replace")
        self._lines.clear()
        try:
            self._stream.write(data)
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # nobody reads our output any more; keep serving

    def _record(self, function: str, kind: str, record: object) -> None:
        self._emit(
            function,
            json.dumps({"time": _now_iso(), "type": kind, "record": record, "function": function}),
        )

    # Lines ----------------------------------------------------------------------------------------
    # Each method returns the line in text form, for the invocation's log tail.
    def function_line(self, function: str, line: str) -> str:
        """One line the runtime (or anything in its environment) wrote."""
        if self._json:
            self._record(function, "function", line)
        elif "\r" in line:
            self._emit(function, self._as_lines(function, line))
        else:
            self._emit(function, line)
        return line

    def _as_lines(self, function: str, line: str) -> str:
        """A record joined with ``\\r`` as terminal lines: the later ones indented (and tagged)."""
        prefix = f"[{function}] " if self._tag else ""
        return line.rstrip("\r").replace("\r", "\n" + prefix + CONTINUATION)

    def start(self, function: str, request_id: str, version: str) -> str:
        line = f"START RequestId: {request_id} Version: {version}"
        if self._json:
            self._record(function, "platform.start", {"requestId": request_id, "version": version})
        else:
            self._emit(function, line)
        return line

    def end(self, function: str, request_id: str) -> str:
        line = f"END RequestId: {request_id}"
        if not self._json:  # JSON format has no END record: platform.report closes the invoke
            self._emit(function, line)
        return line

    def report(self, function: str, report: Report) -> str:
        if self._json:
            self._record(function, "platform.report", report.record())
        line = (
            f"REPORT RequestId: {report.request_id}\tDuration: {report.duration_ms:.2f} ms\t"
            f"Billed Duration: {report.billed_duration_ms} ms\t"
            f"Memory Size: {report.memory_size_mb} MB\t"
            f"Max Memory Used: {report.max_memory_used_mb} MB\t"
        )
        if report.init_duration_ms is not None:
            line += f"Init Duration: {report.init_duration_ms:.2f} ms\t"
        if report.status != "success":
            line += f"Status: {report.status}"
        if not self._json:
            self._emit(function, line)
        return line

    def platform(self, function: str, message: str, request_id: str = "") -> str:
        """A platform message such as ``Task timed out after 3.00 seconds``."""
        line = f"{_now_iso()} {request_id} {message}" if request_id else message
        if self._json:
            self._record(function, "platform.log", {"requestId": request_id, "message": message})
        else:
            self._emit(function, line)
        return line
