"""A streamed response (chunked, with trailers) through the post-runner under serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.postrun.support import POST_RUN, RAW_RUNTIME, env_flags
from tests.serving import running_serve


def raw_post_run(*flags: str) -> tuple[str, ...]:
    return (
        "--code-dir", str(RAW_RUNTIME.parent), "--function-name", "f", "--concurrency", "1",
        *flags, "--", *POST_RUN, "--", sys.executable, str(RAW_RUNTIME),
    )  # fmt: skip


def test_streamed_response_reaches_the_caller_and_the_command(tmp_path: Path) -> None:
    command = 'cp "$POST_RUNNER_RESULT_FILE" "$OUT/$POST_RUNNER_OUTCOME-$POST_RUNNER_REQUEST_ID"'
    with running_serve(*raw_post_run(*env_flags(COMMAND=command, OUT=str(tmp_path)))) as serve:
        event = {"stream": ["one ", "two ", "three"], "pause": 0.05}
        status, headers, body = serve.invoke("f", json.dumps(event).encode())
        assert (status, body) == (200, b"one two three")
        assert "x-amz-function-error" not in headers
        serve.invoke("f")  # runs after the command
    result = tmp_path / f"response-{headers['x-amzn-requestid']}"
    assert result.read_bytes() == b"one two three"


def test_streamed_response_ending_in_error_trailers_is_an_error_outcome(tmp_path: Path) -> None:
    command = 'cp "$POST_RUNNER_RESULT_FILE" "$OUT/$POST_RUNNER_OUTCOME"'
    flags = env_flags(COMMAND=command, OUT=str(tmp_path), MODE="AfterError")
    with running_serve(*raw_post_run(*flags)) as serve:
        event = {"stream": ["partial"], "error_type": "Stream.Broke"}
        _, headers, body = serve.invoke("f", json.dumps(event).encode())
        assert headers.get("x-amz-function-error") == "Unhandled"
        assert json.loads(body)["errorType"] == "Stream.Broke"
        serve.invoke("f")
    error = json.loads((tmp_path / "error").read_bytes())
    assert error == {"errorMessage": "stream broke", "errorType": "Stream.Broke"}
    assert not (tmp_path / "response").exists()
