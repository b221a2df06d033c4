"""Handlers the AMQP tests run on lambdakit's Python runtime, one function each."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def echo(event: Any, context: Any) -> dict[str, Any]:
    """The event back, with what the function saw of its invocation and which instance ran it."""
    client = context.client_context
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(float(event["sleep"]))
    return {
        "event": event,
        "instance": os.environ.get("INSTANCE", ""),
        "request_id": context.aws_request_id,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID", ""),
        "client_context": None if client is None else getattr(client, "custom", None),
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def fail(event: Any, context: Any) -> None:
    raise ValueError("the handler failed on purpose")


def crash(event: Any, context: Any) -> None:
    os._exit(3)


def environment(event: Any, context: Any) -> dict[str, str]:
    return dict(os.environ)


def record(event: Any, context: Any) -> dict[str, Any]:
    """Append the event to RECORD_FILE; fail when the event asks to (for Event retries)."""
    with open(os.environ["RECORD_FILE"], "a") as file:
        file.write(json.dumps({"event": event, "request_id": context.aws_request_id}) + "\n")
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("failing as asked")
    return {"recorded": True}
