"""``after_response``: tasks run after the caller has the response, before the next event."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("after"))


def test_response_is_sent_before_the_task_and_next_event_waits_for_it(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.schedule", "lambdakit", "--concurrency", "1") as serve:
        invoke_json(serve, {})  # warm up: the cold start is not what is measured here
        started = time.monotonic()
        status, _, first = invoke_json(serve, {"tasks": [["slow", "A", 1.0]]})
        elapsed = time.monotonic() - started
        assert status == 200
        assert elapsed < 0.7, f"caller waited {elapsed:.2f}s for a response that needs no task"

        # The same (only) environment serves the next event only once the task is done.
        status, _, second = invoke_json(serve, {})
        assert status == 200
        assert serve.wait_for_output(r"task-done A ", timeout=10)
        done_at = float(re.findall(r"task-done A ([0-9.]+)", serve.output())[0])
        assert second["pid"] == first["pid"]
        assert second["started"] >= done_at
        assert second["started"] - first["started"] >= 0.95


def test_failing_task_is_logged_with_request_id_and_isolated(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.schedule", "lambdakit", "--concurrency", "1") as serve:
        status, headers, first = invoke_json(
            serve, {"tasks": [["fail"], ["slow", "B", 0.0], ["fail"]]}
        )
        assert status == 200 and "x-amz-function-error" not in headers
        request_id = headers["x-amzn-requestid"]
        assert serve.wait_for_output(r"task-done B", timeout=10)
        status, headers, second = invoke_json(serve, {"tasks": []})
        assert status == 200 and "x-amz-function-error" not in headers
        assert second["pid"] == first["pid"]
        assert serve.wait_for_output("RuntimeError: task exploded", count=2, timeout=10)
        output = serve.output()
    failures = [line for line in output.splitlines() if "after_response task" in line]
    assert len(failures) == 2, output
    assert all(request_id in line and "failed" in line for line in failures), failures
    assert output.count("RuntimeError: task exploded") == 2


def test_task_reads_remaining_time(code_dir: Path) -> None:
    extra = ("--concurrency", "1", "--timeout", "10")
    with serve_handler(code_dir, "app.schedule", "lambdakit", *extra) as serve:
        invoke_json(serve, {"tasks": [["remaining"]]})
        assert serve.wait_for_output(r"task-remaining \d+", timeout=10)
        remaining = int(re.findall(r"task-remaining (\d+)", serve.output())[0])
    assert 5_000 < remaining <= 10_000


def test_task_running_at_the_deadline_is_cut_off(code_dir: Path) -> None:
    extra = ("--concurrency", "1", "--timeout", "2")
    with serve_handler(code_dir, "app.schedule", "lambdakit", *extra) as serve:
        started = time.monotonic()
        status, _, _ = invoke_json(serve, {"tasks": [["slow", "C", 30], ["slow", "D", 0]]})
        assert status == 200
        assert time.monotonic() - started < 1.5
        assert serve.wait_for_output(r"cut off at the invocation deadline", timeout=10)
        assert time.monotonic() - started < 5
        status, headers, _ = invoke_json(serve, {})
        assert status == 200 and "x-amz-function-error" not in headers
        output = serve.output()
    assert "task-done C" not in output and "task-done D" not in output
    assert "1 later task(s) dropped" in output


def test_async_task_runs_on_the_shared_loop(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.async_handler", "lambdakit", "--concurrency", "1") as serve:
        status, _, body = invoke_json(serve, {"later": True})
        assert status == 200
        assert serve.wait_for_output(r"async-task-done after-async", timeout=10)
        loop_id = re.findall(r"async-task-done after-async loop=(\d+)", serve.output())[0]
    assert int(loop_id) == body["loop_id"]


def test_after_response_outside_an_invocation_is_an_error() -> None:
    from lambdakit import after_response

    with pytest.raises(RuntimeError, match="during an invocation"):
        after_response(print, "never")
