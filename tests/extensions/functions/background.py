"""Handlers that leave work behind: background_task and after_response, under any runtime."""

import os
import time

from lambdakit import after_response
from lambdakit.extensions import background_task


def _work(label, seconds):
    print(f"work-start {label} {time.time():.3f}")
    time.sleep(seconds)
    print(f"work-done {label} {time.time():.3f}")


def _explode():
    raise RuntimeError("exploded")


def handler(event, context):
    """{"background": [label, seconds]}, {"after": [label, seconds]}, {"fail": true}."""
    if event.get("fail"):
        background_task(_explode)
    if "background" in event:
        background_task(_work, *event["background"])
    if "after" in event:
        after_response(_work, *event["after"])
    return {"pid": os.getpid(), "started": time.time()}
