"""A handler that answers after 1 s and hands 3 s of follow-up work to its internal extension."""

from __future__ import annotations

import json
import time
from typing import Any

from after_response import after_response, log


def _answer(event: Any) -> dict[str, str]:
    time.sleep(1)  # the work the caller waits for
    return {"message": "hello from extension"}


def _follow_up(answer: dict[str, str]) -> None:
    log(f"follow-up: started with {json.dumps(answer)}")
    time.sleep(3)  # the work nobody waits for
    log("follow-up: done")


def handler(event: Any, context: Any) -> dict[str, Any]:
    log(f"handler: event {json.dumps(event)}")
    answer = _answer(event)
    after_response(_follow_up, answer)
    return {"statusCode": 200, "body": json.dumps(answer)}
