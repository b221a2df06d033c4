"""NotifyFunction: invoked asynchronously; its failures go to OrdersFunction (EventInvokeConfig)."""

from __future__ import annotations

import os
from typing import Any

from orders_shared import describe_order  # from the SharedLayer


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("fail"):
        raise RuntimeError("the notification could not be sent")
    order = describe_order(str(event.get("id", "?")), "n/a")
    return {"notified": order["id"], "stage": os.environ["STAGE"], "level": os.environ["LOG_LEVEL"]}
