"""Answers after 1 s and hands its follow-up to another function as an Event invocation."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

# Inside lambdakit serve, AWS_ENDPOINT_URL_LAMBDA points the SDK at the service itself.
_lambda = boto3.client("lambda")


def handler(event: Any, context: Any) -> dict[str, Any]:
    print(f"front: event {json.dumps(event)}", flush=True)
    time.sleep(1)  # the work the caller waits for
    answer = {"message": "hello from the front function"}
    _lambda.invoke(
        FunctionName=os.environ["FOLLOW_UP_FUNCTION"],
        InvocationType="Event",  # queued, answered 202 at once
        Payload=json.dumps(answer).encode(),
    )
    return {"statusCode": 200, "body": json.dumps(answer)}
