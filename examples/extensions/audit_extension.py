"""An external extension in Python: logs each INVOKE, the SHUTDOWN, and each invocation's
billed duration from the Telemetry API."""

from __future__ import annotations

from lambdakit.extensions import Extension, InvokeEvent, ShutdownEvent, TelemetryRecord


class Audit(Extension):
    telemetry = ("platform",)

    def on_invoke(self, event: InvokeEvent) -> None:
        print(f"[audit] invoke {event.request_id}, {event.remaining_ms()} ms left")

    def on_shutdown(self, event: ShutdownEvent) -> None:
        print(f"[audit] shutdown ({event.reason})")

    def on_telemetry(self, record: TelemetryRecord) -> None:
        if record.type == "platform.report" and isinstance(record.record, dict):
            metrics = record.record.get("metrics", {})
            print(f"[audit] {record.request_id} billed {metrics.get('billedDurationMs')} ms")
