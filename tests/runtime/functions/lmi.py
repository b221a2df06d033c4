"""Handlers for the Managed Instances tests: they sleep, log, and say who served them."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

#: One line per import of this module (Init): counted by the tests.
print(f"LMI-INIT pid={os.getpid()}", flush=True)

logger = logging.getLogger("lmi")


def _answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        from lambdakit.runtime import current_trace_id

        trace = current_trace_id()
    except ImportError:
        trace = None
    return {
        "i": event.get("i"),
        "request_id": context.aws_request_id,
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace_id": trace,
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
    }


def sleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("start %s", event.get("i"))
    if event.get("crash"):
        os._exit(3)
    time.sleep(float(event.get("sleep", 0)))
    logger.info("end %s", event.get("i"))
    return _answer(event, context)


async def asleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("start %s", event.get("i"))
    await asyncio.sleep(float(event.get("sleep", 0)))
    logger.info("end %s", event.get("i"))
    return _answer(event, context)


def _after(request_id: str) -> None:
    logger.info("after %s", request_id)


async def _after_async(request_id: str) -> None:
    await asyncio.sleep(0.01)
    logger.info("after %s", request_id)


def deferred(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from lambdakit.runtime import after_response

    after_response(_after, context.aws_request_id)
    time.sleep(float(event.get("sleep", 0)))
    return _answer(event, context)


async def adeferred(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from lambdakit.runtime import after_response

    after_response(_after_async, context.aws_request_id)
    after_response(_after, context.aws_request_id)
    await asyncio.sleep(float(event.get("sleep", 0)))
    return _answer(event, context)
