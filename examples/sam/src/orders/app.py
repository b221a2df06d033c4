"""OrdersFunction: GET /orders/{id} on the HTTP API (payload format 2.0)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from orders_shared import describe_order  # from the SharedLayer


def get_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order_id = (event.get("pathParameters") or {}).get("id", "unknown")
    order = describe_order(order_id, os.environ["TABLE_NAME"])
    stamp = subprocess.run(  # from the AuditLayer's bin/, on PATH
        ["stamp", order_id], capture_output=True, text=True, check=True
    ).stdout.strip()
    body = {
        "order": order,
        "stamp": stamp,
        "stage": os.environ["STAGE"],
        "log_level": os.environ["LOG_LEVEL"],
        "region_label": os.environ["REGION_LABEL"],
        "notify_function": os.environ["NOTIFY_FUNCTION"],
        "audit": os.environ["AUDIT"],
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
