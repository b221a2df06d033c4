"""Response streaming: a runtime streams chunks (and error trailers), callers see them as sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.serving import REPO, Serve, lambda_client, running_serve

STREAMING = REPO / "tests" / "fixtures" / "runtimes" / "streaming"


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with running_serve(
        "--function-name", "stream", "--code-dir", str(STREAMING), "--timeout", "10"
    ) as s:
        yield s


def test_invoke_with_response_stream_delivers_the_first_chunk_before_the_handler_ends(
    serve: Serve,
) -> None:
    plan = {"chunks": ["first ", "second ", "third"], "delay": 0.6}
    started = time.monotonic()
    response = lambda_client(serve).invoke_with_response_stream(
        FunctionName="stream", Payload=json.dumps(plan).encode()
    )
    events = []
    for event in response["EventStream"]:
        events.append((time.monotonic() - started, event))
    chunks = [(t, e["PayloadChunk"]["Payload"]) for t, e in events if "PayloadChunk" in e]
    assert b"".join(c for _, c in chunks) == b"first second third"
    assert chunks[0][0] < 0.5  # before the runtime's 1.2 s of sending was over
    assert events[-1][0] > 1.1
    assert "InvokeComplete" in events[-1][1]
    assert "ErrorCode" not in events[-1][1]["InvokeComplete"]
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    assert response["ExecutedVersion"] == "$LATEST"


def test_a_mid_stream_error_is_reported_in_invoke_complete(serve: Serve) -> None:
    plan = {"chunks": ["partial"], "error": True}
    response = lambda_client(serve).invoke_with_response_stream(
        FunctionName="stream", Payload=json.dumps(plan).encode()
    )
    events = list(response["EventStream"])
    assert events[0] == {"PayloadChunk": {"Payload": b"partial"}}
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "StreamError"
    assert complete["ErrorDetails"] == "stream broke"
    assert serve.wait_for_output(r"runtime got HTTP/1.1 202")


def test_a_plain_invoke_of_a_streaming_function_returns_the_whole_body(serve: Serve) -> None:
    plan = {"chunks": ["one ", "two"], "delay": 0.1}
    status, headers, body = serve.invoke("stream", json.dumps(plan).encode())
    assert status == 200
    assert body == b"one two"
    assert headers["content-type"] == "text/plain"
    error = serve.invoke("stream", json.dumps({"chunks": ["x"], "error": True}).encode())
    assert error[1]["x-amz-function-error"] == "Unhandled"
    assert json.loads(error[2]) == {"errorMessage": "stream broke", "errorType": "StreamError"}


def test_log_tail_returns_the_invocations_last_4_kb_of_log(serve: Serve) -> None:
    plan = {"chunks": ["a", "b"]}
    response = lambda_client(serve).invoke(
        FunctionName="stream", Payload=json.dumps(plan).encode(), LogType="Tail"
    )
    import base64

    log = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = log.splitlines()
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "sent chunk 0" in lines and "sent chunk 1" in lines
    assert lines[-2] == f"END RequestId: {request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert response["Payload"].read() == b"ab"
