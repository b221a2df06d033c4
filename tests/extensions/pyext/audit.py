"""Python external extensions for the tests, built on lambdakit.extensions.Extension."""

from __future__ import annotations

import json
import os

from lambdakit.extensions import (
    Extension,
    ExtensionFailure,
    InvokeEvent,
    Registration,
    ShutdownEvent,
    TelemetryRecord,
)


class Audit(Extension):
    """The subclass style: logs its registration, each INVOKE and the SHUTDOWN."""

    def on_init(self, registration: Registration) -> None:
        print(f"[audit] registered as {registration.name} for {registration.function_name}")
        print(f"[audit] pid {os.getpid()}")

    def on_invoke(self, event: InvokeEvent) -> None:
        print(f"[audit] invoke {event.request_id} remaining>0={event.remaining_ms() > 0}")

    def on_shutdown(self, event: ShutdownEvent) -> None:
        print(f"[audit] shutdown {event.reason}")


#: The decorator style.
hooks = Extension()


@hooks.invoke
def _invoke(event: InvokeEvent) -> None:
    print(f"[hooks] invoke {event.request_id}")


@hooks.shutdown
def _shutdown(event: ShutdownEvent) -> None:
    print(f"[hooks] shutdown {event.reason}")


class Broken(Extension):
    """Fails Init with its own error type."""

    def on_init(self, registration: Registration) -> None:
        raise ExtensionFailure("Extension.ConfigInvalid", "AUDIT_TABLE is not set")


class Flaky(Extension):
    """Its first INVOKE hook raises: ``exit/error``, then the process ends."""

    def on_invoke(self, event: InvokeEvent) -> None:
        print(f"[flaky] invoke {event.request_id}")
        raise RuntimeError("flaky hook")


class Telemetry(Extension):
    """Subscribes to platform records and function lines and prints one line per record."""

    telemetry = ("platform", "function")

    def on_telemetry(self, record: TelemetryRecord) -> None:
        detail = record.request_id if record.type.startswith("platform.") else record.record
        print(f"[tele] {record.type} {json.dumps(detail)}")
