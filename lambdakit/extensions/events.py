"""What the Extensions API hands an extension: its registration, and INVOKE / SHUTDOWN events.

Shapes: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lambdakit.wire import extensions as wire


@dataclass(frozen=True, slots=True)
class Registration:
    """The answer to ``POST /extension/register``."""

    name: str
    identifier: str
    function_name: str
    function_version: str
    handler: str
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvokeEvent:
    """An invocation started; the extension has until ``deadline_ms`` (epoch ms) to call next."""

    request_id: str
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None = None

    def remaining_ms(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


@dataclass(frozen=True, slots=True)
class ShutdownEvent:
    """The environment is going away (``reason``: spindown, timeout or failure)."""

    reason: str
    deadline_ms: int

    def remaining_ms(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


Event = InvokeEvent | ShutdownEvent


def parse_event(body: bytes) -> Event:
    """Decode an ``event/next`` answer; ``ValueError`` names what is wrong with it."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"an extension event must be a JSON object, got {body[:100]!r}")
    kind = document.get("eventType")
    if kind == wire.INVOKE:
        tracing = document.get("tracing")
        trace_id = tracing.get("value") if isinstance(tracing, Mapping) else None
        return InvokeEvent(
            request_id=str(document.get("requestId", "")),
            deadline_ms=int(document.get("deadlineMs", 0)),
            invoked_function_arn=str(document.get("invokedFunctionArn", "")),
            trace_id=str(trace_id) if trace_id else None,
        )
    if kind == wire.SHUTDOWN:
        return ShutdownEvent(
            reason=str(document.get("shutdownReason", "")),
            deadline_ms=int(document.get("deadlineMs", 0)),
        )
    raise ValueError(f"unknown extension eventType {kind!r}")
