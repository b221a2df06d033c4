"""A handler for Lambda Managed Instances: N invocations of it run at once in one environment.

Run under ``python -m lambdakit.runtime app.handler`` (sync: worker processes, or threads with
LAMBDAKIT_WORKERS=threads) or ``app.async_handler`` (N tasks on one event loop).
"""

import asyncio
import logging
import time

from lambdakit.runtime import current_trace_id

logger = logging.getLogger("app")
logger.setLevel(logging.INFO)

#: Made once, at Init, and shared by every invocation (and, copy-on-write, every worker).
TABLE = {n: n * n for n in range(100_000)}


def handler(event, context):
    logger.info("working")  # a JSON line carrying this invocation's requestId
    time.sleep(float(event.get("sleep", 0.1)))
    return {"request_id": context.aws_request_id, "square": TABLE[int(event.get("n", 3))]}


async def async_handler(event, context):
    logger.info("working, trace %s", current_trace_id())
    await asyncio.sleep(float(event.get("sleep", 0.1)))
    return {
        "request_id": context.aws_request_id,
        "remaining": context.get_remaining_time_in_millis(),
    }
