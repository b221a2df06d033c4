"""A handler that answers at once and leaves work behind (see docs/extensions.md).

Import ``lambdakit.extensions`` at the top of the module: under awslambdaric (and on Lambda's
managed Python runtime) that registers the internal extension that holds the environment, and
Lambda accepts registrations only during Init.
"""

from __future__ import annotations

import logging
import time

from lambdakit import after_response
from lambdakit.extensions import background_task

logger = logging.getLogger("app")
logger.setLevel(logging.INFO)


def store(order_id: str) -> None:
    """Slow work the caller does not wait for (a database write, an API call ...)."""
    logger.info("storing %s", order_id)
    time.sleep(1.0)
    logger.info("stored %s", order_id)


def flush_metrics(order_id: str) -> None:
    logger.info("metrics flushed for %s", order_id)


def handler(event: dict[str, str], context: object) -> dict[str, str]:
    order_id = event.get("order", "o-1")
    background_task(store, order_id)  # starts now, on its own thread
    after_response(flush_metrics, order_id)  # runs once the response is out
    return {"accepted": order_id}
