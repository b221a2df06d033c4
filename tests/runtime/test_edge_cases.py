"""Awkward values and errors: marshalled as awslambdaric does, and the runtime keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler
from tests.serving import lambda_client


@pytest.mark.parametrize("runtime", ["lambdakit", "awslambdaric"])
def test_bytes_named_tuples_and_asdict_objects_marshal_like_simplejson(
    tmp_path: Path, runtime: str
) -> None:
    with serve_handler(make_code_dir(tmp_path), "edge.values", runtime) as serve:
        status, headers, body = invoke_json(serve)
    assert status == 200 and "x-amz-function-error" not in headers
    assert body == {
        "data": "abc",
        "key": 1,
        "rows": [{"a": 1, "b": "x"}],
        "point": {"x": 1, "y": 2},
        "record": {"a": 1},
        "plain": [1, 2],
    }


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("edge.surrogate_error", "ValueError", "bad name caf\udce9"),
        ("edge.unicode_class", "错误", "non-latin-1 class name"),
        ("edge.unprintable", "Unprintable", "<unprintable Unprintable object>"),
        ("edge.cancelled", "CancelledError", ""),
    ],
)
def test_awkward_errors_are_reported_and_the_runtime_keeps_serving(
    tmp_path: Path, handler: str, error_type: str, message: str
) -> None:
    code = make_code_dir(tmp_path)
    with serve_handler(code, handler, "lambdakit", "--concurrency", "1") as serve:
        first = invoke_json(serve)
        second = invoke_json(serve)
        assert serve.wait_for_output(r"^REPORT", count=2)
        cold_starts = serve.output().count("Init Duration")
    assert first[1]["x-amz-function-error"] == "Unhandled"
    assert (first[2]["errorType"], first[2]["errorMessage"]) == (error_type, message)
    assert second[2]["errorType"] == error_type
    assert cold_starts == 1  # the same process answered both: it did not crash


def test_an_error_while_streaming_with_an_unencodable_message_ends_the_stream_cleanly(
    tmp_path: Path,
) -> None:
    code = make_code_dir(tmp_path)
    with serve_handler(code, "edge.stream_then_surrogate", "lambdakit", "--concurrency", "1") as s:
        client = lambda_client(s)
        for _ in range(2):
            events = list(client.invoke_with_response_stream(FunctionName="f")["EventStream"])
            assert events[0] == {"PayloadChunk": {"Payload": b"partial"}}
            assert events[-1]["InvokeComplete"]["ErrorCode"] == "ValueError"
        assert s.wait_for_output(r"^REPORT", count=2)
        output = s.output()
    assert output.count("Init Duration") == 1  # no crash, no reset
    assert "Runtime.ExitError" not in output


def test_a_blocking_async_after_response_task_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    code = make_code_dir(tmp_path)
    with serve_handler(
        code, "edge.blocks_after_response", "lambdakit", "--timeout", "2", "--concurrency", "1"
    ) as serve:
        first = invoke_json(serve)
        assert serve.wait_for_output(r"cut off at the invocation deadline", timeout=10)
        second = invoke_json(serve)
        assert serve.wait_for_output(r"^REPORT", count=1)
    assert first[2] == second[2] == {"ok": True}
    assert "Task timed out" not in serve.output()  # the runtime stopped it, not the platform


def test_a_loop_set_by_the_handler_module_is_the_one_async_work_uses(tmp_path: Path) -> None:
    code = make_code_dir(tmp_path)
    with serve_handler(code, "own_loop.handler", "lambdakit", "--concurrency", "1") as serve:
        results = [invoke_json(serve) for _ in range(3)]
    assert [r[0] for r in results] == [200, 200, 200]
    assert all("x-amz-function-error" not in r[1] for r in results), results
    assert [r[2]["size"] for r in results] == [1, 3, 5]  # 1 put per call + 1 after it
