"""Imports nothing but ``lambdakit.after_response``: under awslambdaric that alone must register
the internal extension (lambdakit.runtime.tasks does not know lambdakit.extensions)."""

import time

from lambdakit import after_response


def _work(label, seconds):
    print(f"work-start {label} {time.time():.3f}")
    time.sleep(seconds)
    print(f"work-done {label} {time.time():.3f}")


def handler(event, context):
    after_response(_work, *event["after"])
    return {"started": time.time()}
