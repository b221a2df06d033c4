"""background_task and after_response: work after the response, holding the environment,
under awslambdaric (through the internal extension) and under lambdakit.runtime."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.extensions.support import durations, invoke_json, serve_python, stamp

RUNTIMES = ["awslambdaric", "lambdakit"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_background_task_outlives_the_response_and_holds_the_environment(runtime: str) -> None:
    with serve_python("background.handler", runtime, "--concurrency", "1") as serve:
        invoke_json(serve, {})  # the cold start is not what is measured
        started = time.monotonic()
        status, headers, first = invoke_json(serve, {"background": ["work-A", 1.0]})
        answered = time.monotonic() - started
        # Sent at once: the only environment is busy until the work is done.
        _, _, second = invoke_json(serve, {})
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=10)
        output = serve.output()
    assert status == 200 and "x-amz-function-error" not in headers
    assert answered < 0.5, f"the caller waited {answered:.2f} s for a response needing no work"
    work_started, work_done = stamp(output, "work-start work-A"), stamp(output, "work-done work-A")
    assert work_started - first["started"] < 0.5  # started during the handler, on a thread
    assert work_done - work_started >= 0.95  # ran to the end, not frozen or cut short
    assert second["pid"] == first["pid"]
    assert second["started"] >= work_done  # the environment was held for the work
    assert durations(output)[1] >= 950  # and REPORT bills it


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_after_response_runs_after_the_response_under_any_runtime(runtime: str) -> None:
    with serve_python("background.handler", runtime, "--concurrency", "1") as serve:
        invoke_json(serve, {})
        started = time.monotonic()
        status, _, first = invoke_json(serve, {"after": ["task-B", 0.7]})
        answered = time.monotonic() - started
        _, _, second = invoke_json(serve, {})
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=10)
        output = serve.output()
    assert status == 200
    assert answered < 0.4
    task_started, task_done = stamp(output, "work-start task-B"), stamp(output, "work-done task-B")
    assert task_started >= first["started"]
    assert task_done - task_started >= 0.65
    assert second["pid"] == first["pid"] and second["started"] >= task_done


def test_importing_only_after_response_is_enough_under_awslambdaric() -> None:
    with serve_python("after_only.handler", "awslambdaric", "--concurrency", "1") as serve:
        status, _, first = invoke_json(serve, {"after": ["task-D", 0.5]})
        _, _, second = invoke_json(serve, {"after": ["task-E", 0.0]})
        assert serve.wait_for_output(r"^REPORT", count=2, timeout=10)
        output = serve.output()
    assert status == 200
    assert stamp(output, "work-start task-D") >= first["started"]  # after the handler
    assert second["started"] >= stamp(output, "work-done task-D")  # held for the task


def test_the_runtime_does_not_import_the_extensions() -> None:
    code = (
        "import sys, lambdakit.runtime.tasks, lambdakit.runtime.bootstrap; "
        "assert 'lambdakit.extensions' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_both_kinds_of_work_in_one_invocation_and_a_failing_task_is_isolated() -> None:
    with serve_python("background.handler", "awslambdaric", "--concurrency", "1") as serve:
        payload = {"background": ["work-C", 0.3], "after": ["task-C", 0.3], "fail": True}
        status, headers, _ = invoke_json(serve, payload)
        status2, _, second = invoke_json(serve, {})
        assert serve.wait_for_output(r"^REPORT", count=2, timeout=10)
        output = serve.output()
    assert status == status2 == 200 and "x-amz-function-error" not in headers
    assert "background task _explode failed" in output and "RuntimeError: exploded" in output
    assert second["started"] >= max(
        stamp(output, "work-done work-C"), stamp(output, "work-done task-C")
    )


def test_importing_the_library_only_during_an_invocation_is_refused_with_the_fix() -> None:
    with serve_python("late.handler", "awslambdaric") as serve:
        _, headers, error = invoke_json(serve, {})
    assert headers.get("x-amz-function-error") == "Unhandled"
    assert error["errorType"] == "RuntimeError"
    assert "RegistrationClosed" in error["errorMessage"]
    assert "at the top of the handler module" in error["errorMessage"]


def test_background_task_outside_a_lambda_invocation_is_an_error() -> None:
    from lambdakit.extensions import background_task

    with pytest.raises(RuntimeError, match="during an invocation"):
        background_task(print, "never")
