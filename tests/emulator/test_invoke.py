"""The Invoke API against a real bash+curl runtime: responses, errors and context."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import Serve, bash_function, running_serve


@pytest.fixture(scope="module")
def echo() -> Iterator[Serve]:
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        yield serve


def test_echo_over_http_returns_the_event_and_lambda_headers(echo: Serve) -> None:
    status, headers, body = echo.invoke("echo", b'{"hello": "world"}')
    assert status == 200
    assert json.loads(body) == {"hello": "world"}
    assert headers["content-type"] == "application/json"
    assert headers["x-amz-executed-version"] == "$LATEST"
    assert "x-amz-function-error" not in headers
    request_id = headers["x-amzn-requestid"]
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    assert echo.wait_for_output(rf"^REPORT RequestId: {request_id}\t")
    log = echo.output()
    assert f"START RequestId: {request_id} Version: $LATEST" in log
    assert f"END RequestId: {request_id}" in log
    assert "got an event" in log  # the function's own output line


@pytest.mark.parametrize("name", ["echo%0A", "echo%0D%0A", "echo%00", "echo%20"])
def test_a_function_name_with_a_control_character_or_space_is_refused(
    echo: Serve, name: str
) -> None:
    status, headers, body = echo.invoke(name)
    assert status == 400, body
    assert headers["x-amzn-errortype"] == "InvalidParameterValueException"
    assert b"at 'functionName' failed to satisfy constraint" in body


def test_report_line_has_lambdas_fields_and_init_duration_only_when_cold(echo: Serve) -> None:
    ids = [echo.invoke("echo")[1]["x-amzn-requestid"] for _ in range(2)]
    assert echo.wait_for_output(rf"REPORT RequestId: {ids[1]}")
    reports = {
        line.split()[2]: line for line in echo.output().splitlines() if line.startswith("REPORT")
    }
    warm = reports[ids[1]]
    assert re.search(
        r"\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
        r"Max Memory Used: \d+ MB\t",
        warm,
    )
    assert "Init Duration" not in warm
    first = echo.output().splitlines()
    cold = next(line for line in first if line.startswith("REPORT"))
    assert re.search(r"Init Duration: \d+\.\d\d ms", cold)


@pytest.mark.parametrize(
    "name",
    [
        "echo",
        "echo:$LATEST",
        "123456789012:function:echo",
        "arn:aws:lambda:us-east-1:123456789012:function:echo",
        "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aecho",
        "echo?Qualifier=%24LATEST",
    ],
)
def test_function_name_forms_route_to_the_function(echo: Serve, name: str) -> None:
    status, _, body = echo.invoke(name, b"[1, 2]")
    assert status == 200
    assert json.loads(body) == [1, 2]


def test_the_runtime_sees_lambdas_context_headers_and_environment() -> None:
    with running_serve(
        *bash_function(
            "--function-name",
            "ctx",
            "--memory",
            "256",
            "--timeout",
            "7",
            "--env",
            "CUSTOM_VAR=from-flag",
            handler="function.context",
        )
    ) as serve:
        status, headers, body = serve.invoke(
            "arn:aws:lambda:us-east-1:123456789012:function:ctx", b"{}"
        )
    assert status == 200, body
    context = json.loads(body)
    assert context["requestId"] == headers["x-amzn-requestid"]
    assert context["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:ctx"
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", context["trace"]
    )
    import time

    assert 0 < context["deadlineMs"] - time.time() * 1000 < 7000
    assert context["env"] == {
        "name": "ctx",
        "memory": "256",
        "version": "$LATEST",
        "handler": "function.context",
        "region": "us-east-1",
        "taskRoot": context["env"]["taskRoot"],
        "logGroup": "/aws/lambda/ctx",
        "initType": "on-demand",
        "custom": "from-flag",
    }
    assert context["env"]["taskRoot"].endswith("tests/fixtures/runtimes/bash")


def test_a_function_error_is_200_with_x_amz_function_error_and_the_runtimes_body() -> None:
    with running_serve(*bash_function("--function-name", "f", handler="function.fail")) as serve:
        status, headers, body = serve.invoke("f")
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    assert json.loads(body) == {
        "errorMessage": "handler failed: boom",
        "errorType": "HandlerFailed",
    }


def test_a_response_over_6_mb_is_function_response_size_too_large() -> None:
    with running_serve(*bash_function("--function-name", "big", handler="function.big")) as serve:
        status, headers, body = serve.invoke("big", timeout=60)
        # The environment stays usable: the runtime got its 413 and asked for the next event.
        again = serve.invoke("big", timeout=60)
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert error["errorMessage"] == (
        "Response payload size (7000002 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes)."
    )
    assert json.loads(again[2])["errorType"] == "Function.ResponseSizeTooLarge"


def test_an_error_over_6_mb_is_refused_with_413_and_fails_the_invocation() -> None:
    flags = bash_function("--function-name", "f", handler="function.big_failure")
    with running_serve(*flags) as serve:
        status, headers, body = serve.invoke("f", timeout=60)
        again = serve.invoke("f", timeout=60)  # the runtime got its 413 and went on
    assert (status, headers["x-amz-function-error"]) == (200, "Unhandled")
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"
    assert json.loads(again[2])["errorType"] == "Function.ResponseSizeTooLarge"


def test_dry_run_validates_and_runs_nothing(echo: Serve) -> None:
    status, headers, body = echo.invoke("echo", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    assert status == 204
    assert body == b""
    assert "x-amzn-requestid" in headers
    status, _, _ = echo.invoke("nope", b"{}", {"X-Amz-Invocation-Type": "DryRun"})
    assert status == 404


def test_an_empty_payload_reaches_the_function_as_an_empty_object(echo: Serve) -> None:
    status, _, body = echo.invoke("echo", b"")
    assert status == 200
    assert json.loads(body) == {}


def test_curl_with_a_large_body_gets_100_continue_and_no_delay(echo: Serve, tmp_path: Path) -> None:
    """curl sends ``Expect: 100-continue`` for bodies over 1 KB and waits 1 s without an answer."""
    import subprocess
    import time

    body = tmp_path / "body.json"
    body.write_text(json.dumps({"data": "x" * 4000}))
    started = time.monotonic()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-XPOST",
            f"{echo.url}/2015-03-31/functions/echo/invocations",
            "-d",
            f"@{body}",
        ],
        capture_output=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": "x" * 4000}
    assert elapsed < 0.8
