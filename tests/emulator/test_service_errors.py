"""Service errors as Lambda returns them: status, JSON body and x-amzn-ErrorType."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import Serve, bash_function, running_serve


@pytest.fixture(scope="module")
def echo() -> Iterator[Serve]:
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        yield serve


def _error(response: tuple[int, dict[str, str], bytes]) -> tuple[int, str, dict[str, str]]:
    status, headers, body = response
    return status, headers.get("x-amzn-errortype", ""), json.loads(body)


def test_unknown_function_is_404_resource_not_found(echo: Serve) -> None:
    status, kind, body = _error(echo.invoke("missing"))
    assert (status, kind) == (404, "ResourceNotFoundException")
    assert body["message"] == (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing"
    )


def test_unknown_qualifier_is_404(echo: Serve) -> None:
    status, kind, body = _error(echo.invoke("echo?Qualifier=prod"))
    assert (status, kind) == (404, "ResourceNotFoundException")
    assert body["message"].endswith("function:echo:prod")


def test_a_body_that_is_not_json_is_400_invalid_request_content(echo: Serve) -> None:
    status, kind, body = _error(echo.invoke("echo", b"hello"))
    assert (status, kind) == (400, "InvalidRequestContentException")
    assert "Could not parse request body into json" in body["message"]


def test_json_nested_deeper_than_the_parser_goes_is_a_typed_400(echo: Serve) -> None:
    """A payload or client context nested 100,000 deep is refused as bad input, not a 500."""
    deep = b"[" * 100_000 + b"]" * 100_000
    status, kind, body = _error(echo.invoke("echo", deep))
    assert (status, kind) == (400, "InvalidRequestContentException")
    assert "Could not parse request body into json" in body["message"]
    context = base64.b64encode(b'{"a":' + b"[" * 1300 + b"]" * 1300 + b"}").decode()
    status, kind, _ = _error(echo.invoke("echo", b"{}", {"X-Amz-Client-Context": context}))
    assert (status, kind) == (400, "InvalidParameterValueException")
    assert echo.invoke("echo", b"[[[1]]]")[0] == 200  # and the service goes on


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/2015-03-31/functions/echo/invocations", {"X-Amz-Invocation-Type": "Event"}),
        ("/2014-11-13/functions/echo/invoke-async/", {}),
        ("/2021-11-15/functions/echo/response-streaming-invocations", {}),
    ],
)
def test_every_invoke_door_refuses_json_nested_too_deep_as_bad_input(
    echo: Serve, path: str, headers: dict[str, str]
) -> None:
    conn = echo.connection()
    try:
        conn.request("POST", path, b"[" * 100_000 + b"]" * 100_000, headers)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 400
    assert response.getheader("x-amzn-ErrorType") == "InvalidRequestContentException"
    assert "Could not parse request body into json" in body["message"]


def test_a_payload_over_6_mb_is_413_request_too_large(echo: Serve) -> None:
    payload = b'"' + b"a" * (6 * 1024 * 1024 + 200) + b'"'
    status, kind, body = _error(echo.invoke("echo", payload))
    assert (status, kind) == (413, "RequestTooLargeException")
    assert "InvokeFunction" in body["message"]
    # The connection and the service survive.
    assert echo.invoke("echo", b"{}")[0] == 200


def test_a_bad_invocation_type_is_400(echo: Serve) -> None:
    status, kind, _ = _error(echo.invoke("echo", b"{}", {"X-Amz-Invocation-Type": "Later"}))
    assert (status, kind) == (400, "InvalidParameterValueException")


def test_bad_client_context_is_400(echo: Serve) -> None:
    status, kind, _ = _error(echo.invoke("echo", b"{}", {"X-Amz-Client-Context": "%%%"}))
    assert (status, kind) == (400, "InvalidParameterValueException")


def test_unknown_paths_and_methods_are_refused(echo: Serve) -> None:
    conn = echo.connection()
    conn.request("GET", "/2015-03-31/functions/echo/invocations")
    response = conn.getresponse()
    assert response.status == 400
    assert response.getheader("x-amzn-ErrorType") == "UnknownOperationException"
    response.read()
    conn.request("POST", "/nothing/here", b"{}")
    response = conn.getresponse()
    assert response.status == 400
    response.read()
    conn.close()


def test_every_environment_busy_and_queue_full_is_429_too_many_requests() -> None:
    with running_serve(
        *bash_function(
            "--function-name",
            "slow",
            "--concurrency",
            "1",
            "--max-queue",
            "0",
            handler="function.sleep_half",
        )
    ) as serve:
        first: list[int] = []
        thread = threading.Thread(target=lambda: first.append(serve.invoke("slow")[0]))
        thread.start()
        assert serve.wait_for_output(r"^START RequestId", timeout=10)
        status, headers, body = serve.invoke("slow")
        thread.join(30)
    assert first == [200]
    assert status == 429
    assert headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert headers["retry-after"] == "1"
    assert json.loads(body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"


def test_an_oversized_body_announced_with_100_continue_is_refused_before_it_is_sent(
    echo: Serve, tmp_path: Path
) -> None:
    body = tmp_path / "big.json"
    body.write_bytes(b'"' + b"a" * (7 * 1024 * 1024) + b'"')
    started = time.monotonic()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
            "-XPOST",
            f"{echo.url}/2015-03-31/functions/echo/invocations",
            "--data-binary",
            f"@{body}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    status, uploaded = result.stdout.split()
    assert status == "413"
    assert float(uploaded) < 1024 * 1024  # curl never sent the 7 MB
    assert elapsed < 0.9  # nor waited for a 100 Continue that would not come
