"""examples/internal-extension/ (an internal extension written with the standard library, the
pattern of the AWS Compute Blog post) under lambdakit serve, with awslambdaric and with
lambdakit.runtime: Lambda's behaviour, not the RIE's (which answers only after the 3 s task)."""

from __future__ import annotations

import json
import time

import pytest

from tests.extensions.support import INTERNAL_EXTENSION_EXAMPLE, durations, serve_python
from tests.serving import Serve

_TAGS = ("handler:", "follow-up:")


def _messages(output: str) -> list[str]:
    """The example's own log lines, in order."""
    return [line for line in output.splitlines() if line.startswith(_TAGS)]


@pytest.mark.parametrize("runtime", ["awslambdaric", "lambdakit"])
def test_the_internal_extension_example_runs_work_after_the_response(runtime: str) -> None:
    flags = ("--concurrency", "1", "--timeout", "10")
    code_dir = INTERNAL_EXTENSION_EXAMPLE
    with serve_python("app.handler", runtime, *flags, code_dir=code_dir) as serve:
        assert _call(serve, 0) < 3  # the cold start
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
    messages = _messages(output)
    assert messages.count("follow-up: done") == 3
    second_done = [i for i, m in enumerate(messages) if m == "follow-up: done"][1]
    assert messages.index('handler: event {"n": 1}') < second_done
    assert messages.index('handler: event {"n": 2}') > second_done
    assert all(duration > 3900 for duration in durations(output))  # billed, as Lambda does


def _call(serve: Serve, n: int) -> float:
    started = time.monotonic()
    status, _, body = serve.invoke("f", json.dumps({"n": n}).encode())
    assert status == 200
    assert json.loads(json.loads(body)["body"]) == {"message": "hello from extension"}
    return time.monotonic() - started
