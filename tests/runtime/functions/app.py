"""Handlers the runtime tests invoke (under lambdakit.runtime, awslambdaric and RIE)."""

import datetime
import json
import logging
import os
import sys
import time
from decimal import Decimal
from typing import Any

from lambdakit import after_response
from lambdakit.runtime import current_context

logger = logging.getLogger("app")


def ok(event, context):
    return {"hello": "world", "event": event}


def raising(event, context):
    raise ValueError("something went wrong: " + str(event.get("n")))


def unserializable(event, context):
    return {"when": datetime.datetime(2024, 1, 2, 3, 4, 5)}


def utf8(event, context):
    return {"text": "héllo wörld ✓", "echo": event}


def decimals(event, context):
    return {"price": Decimal("1.10"), "big": Decimal("12345678901234567890.123456789"), "n": [1]}


def nan(event, context):
    return {"value": float("nan")}


def describe(event, context):
    identity = context.identity
    client = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "tenant_id": context.tenant_id,
        "deadline_ms": context.deadline_ms,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "now_ms": int(time.time() * 1000),
        "identity": [identity.cognito_identity_id, identity.cognito_identity_pool_id],
        "client_context_custom": client.custom if client else None,
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
        "current_is_context": current_context() is context,
        "pid": os.getpid(),
    }


def describe_common(event, context):
    """The members awslambdaric's context has too (for the parity test)."""
    client = context.client_context
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "tenant_id": context.tenant_id,
        "identity": [
            context.identity.cognito_identity_id,
            context.identity.cognito_identity_pool_id,
        ],
        "client": [client.custom, client.env, client.client.app_title] if client else None,
        "w3c": context.w3c(),
        "remaining_type": type(context.get_remaining_time_in_millis()).__name__,
        "request_id_matches": context.aws_request_id
        == event.get("expect_request_id", context.aws_request_id),
    }


def logs(event, context):
    print("printed line", event.get("n"))
    logging.getLogger().info("root info %s", "é")
    logger.debug("debug from app")
    logger.warning("warning with extra", extra={"order_id": 42})
    try:
        raise KeyError("missing")
    except KeyError:
        logger.exception("caught")
    return "logged"


def print_then_sleep(event, context):
    print("before-sleep-marker")
    time.sleep(1.5)
    return "slept"


def _slow_task(label, seconds):
    time.sleep(seconds)
    print(f"task-done {label} {time.time():.3f}")


def _failing_task():
    raise RuntimeError("task exploded")


def _remaining_task():
    context = current_context()
    assert context is not None
    print(f"task-remaining {context.get_remaining_time_in_millis()}")


def schedule(event, context):
    """Queue tasks described by the event: {"tasks": [["slow", label, s] | ["fail"] | ...]}."""
    for spec in event.get("tasks", []):
        if spec[0] == "slow":
            after_response(_slow_task, spec[1], spec[2])
        elif spec[0] == "fail":
            after_response(_failing_task)
        elif spec[0] == "remaining":
            after_response(_remaining_task)
        elif spec[0] == "async":
            after_response(_async_task, spec[1])
    return {"pid": os.getpid(), "started": time.time()}


async def _async_task(label):
    import asyncio

    await asyncio.sleep(0.05)
    print(f"async-task-done {label} loop={id(asyncio.get_running_loop())}")


_shared: dict[str, Any] = {}


async def async_handler(event, context):
    import asyncio

    loop = asyncio.get_running_loop()
    if "lock" not in _shared:
        _shared["lock"] = asyncio.Lock()  # created by the first invocation, used by later ones
        _shared["calls"] = 0
    async with _shared["lock"]:
        _shared["calls"] += 1
        await asyncio.sleep(0.01)
    if event.get("later"):
        after_response(_async_task, "after-async")
    return {
        "loop_id": id(loop),
        "loop_type": type(loop).__module__ + "." + type(loop).__name__,
        "calls": _shared["calls"],
        "pid": os.getpid(),
    }


async def async_raising(event, context):
    import asyncio

    await asyncio.sleep(0)
    raise ValueError("async boom")


def raw_bytes(event, context):
    return json.dumps({"raw": True, "event_type": type(event).__name__}).encode()


def version(event, context):
    return {"python": sys.version_info[:2]}
