"""examples/invoke-async/: hand work to a second function with an Event invocation."""

from __future__ import annotations

import time

from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "invoke-async" / "lambdakit.toml"


def test_the_caller_is_answered_after_1_s_while_the_second_function_works_3_s() -> None:
    with running_serve("--config", str(EXAMPLE)) as serve:
        started = time.monotonic()
        status, headers, body = serve.invoke("front", b"{}", timeout=60)
        answered = time.monotonic() - started
        assert serve.wait_for_output(r"follow-up: started", timeout=20)
        started_async = time.monotonic() - started
        assert serve.wait_for_output(r"follow-up: done", timeout=20)
        done = time.monotonic() - started
    assert status == 200, body
    assert "x-amz-function-error" not in headers
    assert b"hello from the front function" in body
    assert 0.9 < answered < 3.5  # the handler's 1 s (plus a cold start)
    assert done - started_async > 2.5  # the second function's 3 s ran after the answer
