"""examples/python/app.py works as its docstring says."""

from __future__ import annotations

import json
import time

from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "python"


def test_example_answers_before_its_after_response_task() -> None:
    args = ("--code-dir", str(EXAMPLE), "--env", "AWS_LAMBDA_LOG_LEVEL=INFO", "app.handler")
    with running_serve(*args) as serve:
        serve.invoke("function", b"{}")  # cold start
        started = time.monotonic()
        status, _, body = serve.invoke("function", '{"name": "Zoë"}'.encode())
        elapsed = time.monotonic() - started
        assert serve.wait_for_output(r"audit recorded for Zoë", timeout=10)
    assert (status, json.loads(body)) == (200, {"message": "Hello, Zoë!"})
    assert elapsed < 0.2  # the task sleeps 0.2 s after the response


def test_example_async_handler() -> None:
    with running_serve("--code-dir", str(EXAMPLE), "app.async_handler") as serve:
        status, _, body = serve.invoke("function", b'{"name": "B"}')
    assert (status, json.loads(body)) == (200, {"message": "Hello, B!", "async": True})
