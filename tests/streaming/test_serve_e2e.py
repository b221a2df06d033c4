"""boto3 ``invoke_with_response_stream`` against ``lambdakit serve`` running streaming handlers."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import Serve, lambda_client, running_serve

FUNCTIONS = Path(__file__).resolve().parent / "functions"


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = tmp_path_factory.mktemp("streaming") / "code"
    shutil.copytree(FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__"))
    return code


@contextlib.contextmanager
def _serve(code_dir: Path, handler: str) -> Iterator[Serve]:
    args = ["--code-dir", str(code_dir), "--function-name", "f", "--timeout", "60", handler]
    with running_serve(*args) as serve:
        yield serve


def _stream(serve: Serve, payload: object) -> list[dict[str, dict[str, object]]]:
    response = lambda_client(serve).invoke_with_response_stream(
        FunctionName="f", Payload=json.dumps(payload).encode()
    )
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    return list(response["EventStream"])


def test_first_chunk_reaches_the_caller_before_the_handler_ends(code_dir: Path) -> None:
    release = code_dir / "release-generator"
    with _serve(code_dir, "streamers.generator") as serve:
        response = lambda_client(serve).invoke_with_response_stream(
            FunctionName="f", Payload=json.dumps({"release": str(release)}).encode()
        )
        events = iter(response["EventStream"])
        try:
            # The handler waits for the release file after its first chunk, so this chunk
            # can only arrive if the runtime and serve forwarded it as it was produced.
            assert next(events) == {"PayloadChunk": {"Payload": b"first"}}
            assert not Path(f"{release}.ended").exists()
            release.touch()
            rest = list(events)
        finally:
            response["EventStream"].close()
    payload = b"".join(e["PayloadChunk"]["Payload"] for e in rest if "PayloadChunk" in e)
    assert payload == "second é!".encode()
    assert rest[-1] == {"InvokeComplete": {}}


def test_mid_stream_error_is_reported_in_invoke_complete(code_dir: Path) -> None:
    with _serve(code_dir, "streamers.generator_fails_midway") as serve:
        events = _stream(serve, {})
        assert serve.wait_for_output(r"\[ERROR\].*ValueError: mid-stream boom")
    assert events[0] == {"PayloadChunk": {"Payload": b"partial"}}
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "ValueError"
    assert "mid-stream boom" in str(complete["ErrorDetails"])


def test_error_before_the_first_byte(code_dir: Path) -> None:
    with _serve(code_dir, "streamers.generator_fails_first") as serve:
        events = _stream(serve, {})
    assert [list(e) for e in events] == [["InvokeComplete"]]
    complete = events[0]["InvokeComplete"]
    assert complete["ErrorCode"] == "KeyError"
    assert "before the first byte" in str(complete["ErrorDetails"])


def test_plain_invoke_of_a_streaming_handler_returns_the_whole_body(code_dir: Path) -> None:
    with _serve(code_dir, "streamers.writer_async") as serve:
        status, headers, body = serve.invoke("f", b"{}")
    assert status == 200
    assert "x-amz-function-error" not in headers
    assert body.startswith(b"async ") and len(body) > len(b"async ")


def _url_port(serve: Serve) -> int:
    assert serve.wait_for_output(r"function URL of f: http://")
    match = re.search(r"function URL of f: http://[0-9.]+:(\d+)/", serve.output())
    assert match is not None
    return int(match.group(1))


def test_function_url_gets_the_prelude_then_chunks_as_written(code_dir: Path) -> None:
    release = code_dir / "release-url"
    args = ["--code-dir", str(code_dir), "--function-name", "f", "--url-port", "0"]
    with running_serve(*args, "streamers.generator_http") as serve:
        conn = http.client.HTTPConnection("127.0.0.1", _url_port(serve), timeout=60)
        try:
            conn.request("GET", "/path?" + urllib.parse.urlencode({"release": str(release)}))
            response = conn.getresponse()
            assert response.status == 201
            assert response.getheader("content-type") == "text/plain"
            assert response.getheader("x-a") == "b"
            assert response.getheader("set-cookie") == "a=1; Path=/"
            # The handler waits for the release file after "hello ": it is on the wire already.
            assert response.read1(65536) == b"hello "
            release.touch()
            assert response.read() == b"url"
        finally:
            conn.close()
