"""The AWS Compute Blog's internal-extension example (examples/blog/, as published: requests,
Powertools, a thread registered at import) under lambdakit serve, with awslambdaric and with
lambdakit.runtime: Lambda's behaviour, not the RIE's (which answers only after the 3 s task)."""

from __future__ import annotations

import json
import time

import pytest

from tests.extensions_lib.support import BLOG, durations, serve_python
from tests.serving import Serve


def _messages(output: str) -> list[tuple[str, str]]:
    """(timestamp, message) of each Powertools log line."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and '"message"' in line:
            record = json.loads(line)
            found.append((record["timestamp"], record["message"]))
    return found


@pytest.mark.parametrize("runtime", ["awslambdaric", "lambdakit"])
def test_the_blog_extension_example_runs_unmodified(runtime: str) -> None:
    flags = ("--concurrency", "1", "--timeout", "10")
    with serve_python("lambda_function.handler", runtime, *flags, code_dir=BLOG) as serve:
        assert _call(serve, 0) < 3  # the cold start (Init imports requests and Powertools)
        assert serve.wait_for_output(r"^REPORT", count=1, timeout=15)  # its task is done
        warm = _call(serve, 1)
        # Sent as soon as the answer came: the only environment is still running the task.
        held = _call(serve, 2)
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=15)
        output = serve.output()
    # The caller has the answer after the handler's 1 s, not after the 3 s task ...
    assert 0.9 < warm < 1.6, warm
    # ... the next call waited for that task: the environment was held meanwhile.
    assert held > 3.8, held
    messages = [message for _, message in _messages(output)]
    assert messages.count("[Async task] Done") == 3
    second_done = [i for i, m in enumerate(messages) if m == "[Async task] Done"][1]
    assert messages.index('[Function] Received event: {"n": 1}') < second_done
    assert messages.index('[Function] Received event: {"n": 2}') > second_done
    assert all(duration > 3900 for duration in durations(output))  # billed, as Lambda does


def _call(serve: Serve, n: int) -> float:
    started = time.monotonic()
    status, _, body = serve.invoke("f", json.dumps({"n": n}).encode())
    assert status == 200
    assert json.loads(json.loads(body)["body"]) == {"message": "hello from extension"}
    return time.monotonic() - started
