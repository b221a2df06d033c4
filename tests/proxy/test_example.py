"""examples/proxy/event_sizes.py, a proxy built on the library, in front of a real runtime."""

from __future__ import annotations

import json
import sys

from tests.postrun.support import RAW_RUNTIME
from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "proxy" / "event_sizes.py"


def test_event_sizes_proxy_logs_events_and_streamed_results() -> None:
    flags = ("--code-dir", str(RAW_RUNTIME.parent), "--function-name", "f", "--concurrency", "1")
    command = (sys.executable, str(EXAMPLE), sys.executable, str(RAW_RUNTIME))
    with running_serve(*flags, "--", *command) as serve:
        status, headers, body = serve.invoke("f", b'{"abc": 1}')
        assert (status, body) == (200, b'{"abc": 1}')
        request_id = headers["x-amzn-requestid"]
        stream = json.dumps({"stream": ["12345", "678"]}).encode()
        _, headers2, body2 = serve.invoke("f", stream)
        assert body2 == b"12345678"
        assert serve.wait_for_output(f"event {request_id}: 10 bytes", timeout=5)
        assert serve.wait_for_output(f"result {request_id}: 10 bytes", timeout=5)
        streamed = headers2["x-amzn-requestid"]
        assert serve.wait_for_output(f"result {streamed}: 8 bytes \\(streamed\\)", timeout=5)
