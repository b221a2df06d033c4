"""The Context object and the per-invocation environment (trace id)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler

TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("context"))


def test_context_fields(code_dir: Path) -> None:
    client_context = {"custom": {"k": "v"}, "env": {"e": 1}, "client": {"app_title": "t"}}
    headers = {
        "X-Amz-Client-Context": base64.b64encode(json.dumps(client_context).encode()).decode(),
        "X-Amzn-Trace-Id": TRACE,
        "X-Amz-Tenant-Id": "tenant-1",
    }
    extra = ("--timeout", "7", "--memory", "256")
    with serve_handler(code_dir, "app.describe", "lambdakit", *extra) as serve:
        sent = time.time() * 1000
        status, response_headers, body = invoke_json(serve, {}, headers=headers)
        _, _, second = invoke_json(serve, {})
    assert status == 200
    assert body["aws_request_id"] == response_headers["x-amzn-requestid"]
    assert body["function_name"] == "f"
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"].endswith(":function:f")
    assert body["memory_limit_in_mb"] == "256"  # a str, as awslambdaric gives it
    assert body["log_group_name"] == "/aws/lambda/f"
    assert body["log_stream_name"]
    assert body["tenant_id"] == "tenant-1"
    assert body["identity"] == [None, None]
    assert body["client_context_custom"] == {"k": "v"}
    assert body["current_is_context"] is True
    # deadline_ms is public and consistent with get_remaining_time_in_millis().
    assert sent + 6_000 < body["deadline_ms"] <= time.time() * 1000 + 7_000
    assert abs(body["deadline_ms"] - body["now_ms"] - body["remaining_ms"]) <= 5
    # _X_AMZN_TRACE_ID is set per invocation from the Runtime API's header.
    assert body["trace_env"] == TRACE
    assert second["trace_env"] and second["trace_env"] != TRACE
    assert second["tenant_id"] is None


def test_context_matches_awslambdaric(code_dir: Path) -> None:
    """Every member both runtimes have is the same; deadline_ms is ours only."""
    client_context = {
        "custom": {"k": "v"},
        "env": {"e": 1},
        "client": {"app_title": "t"},
        "w3c": {"traceparent": "00-abc-def-01", "junk": 1},
    }
    headers = {
        "X-Amz-Client-Context": base64.b64encode(json.dumps(client_context).encode()).decode(),
        "X-Amz-Tenant-Id": "tenant-1",
    }
    seen = {}
    for runtime in ("awslambdaric", "lambdakit"):
        with serve_handler(code_dir, "app.describe_common", runtime, "--memory", "512") as serve:
            status, _, body = invoke_json(serve, {}, headers=headers)
        assert status == 200, body
        seen[runtime] = body
    assert seen["lambdakit"] == seen["awslambdaric"]
    assert seen["lambdakit"]["w3c"] == {"traceparent": "00-abc-def-01"}
