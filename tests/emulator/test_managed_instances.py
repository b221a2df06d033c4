"""Lambda Managed Instances mode of ``lambdakit serve``: several invocations in one environment.

The runtime is ``tests/fixtures/runtimes/workers``: AWS_LAMBDA_MAX_CONCURRENCY threads in one
process, each looping on ``GET next``, logging JSON lines with the request id.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.serving import REPO, Serve, lambda_client, running_serve

WORKERS = REPO / "tests" / "fixtures" / "runtimes" / "workers" / "workers.py"


def _managed(*args: str, limit: int = 4) -> tuple[str, ...]:
    return (
        "--function-name",
        "lmi",
        "--max-concurrency",
        str(limit),
        *args,
        "--",
        sys.executable,
        str(WORKERS),
    )


def _invoke(
    serve: Serve, event: dict[str, object]
) -> tuple[int, dict[str, str], dict[str, object]]:
    status, headers, body = serve.invoke("lmi", json.dumps(event).encode(), timeout=60)
    return status, headers, json.loads(body)


def _together(
    serve: Serve, events: list[dict[str, object]]
) -> list[tuple[int, dict[str, str], dict[str, object]]]:
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(lambda event: _invoke(serve, event), events))


def test_concurrent_invocations_overlap_in_one_environment_and_each_caller_gets_its_own() -> None:
    with running_serve(*_managed("--concurrency", "1", limit=4)) as serve:
        started = time.monotonic()
        answers = _together(serve, [{"sleep": 1.0, "echo": n} for n in range(4)])
        elapsed = time.monotonic() - started
        assert serve.wait_for_output(r"^REPORT ", count=4)
        output = serve.output()
    assert [answer[2]["echo"] for answer in answers] == [0, 1, 2, 3]
    assert all(status == 200 for status, _, _ in answers)
    assert len({answer[2]["pid"] for answer in answers}) == 1  # one environment
    assert len({answer[2]["worker"] for answer in answers}) == 4  # four workers at once
    assert elapsed < 3.0, f"4 x 1 s took {elapsed:.2f} s: they did not overlap"
    # One Init, reported once; the runtime saw the mode's variables.
    assert len(re.findall(r"init pid=", output)) == 1
    assert len(re.findall(r"Init Duration", output)) == 1
    init = json.loads(next(line for line in output.splitlines() if "init pid=" in line))
    assert init["initType"] == "lambda-managed-instances"
    assert init["logFormat"] == "JSON"
    # Each log line carries the request id its caller was answered with.
    for _, headers, answer in answers:
        request_id = headers["x-amzn-requestid"]
        line = next(line for line in output.splitlines() if f'got {answer["echo"]}"' in line)
        assert json.loads(line)["requestId"] == request_id
        assert f"REPORT RequestId: {request_id}\t" in output


def test_more_callers_than_slots_start_another_environment() -> None:
    with running_serve(*_managed("--concurrency", "2", limit=2)) as serve:
        answers = _together(serve, [{"sleep": 0.5, "echo": n} for n in range(4)])
    assert all(status == 200 for status, _, _ in answers)
    pids = [answer[2]["pid"] for answer in answers]
    assert len(set(pids)) == 2 and all(pids.count(pid) == 2 for pid in set(pids))


def test_a_timeout_fails_only_that_invocation() -> None:
    with running_serve(*_managed("--timeout", "1", "--concurrency", "1", limit=3)) as serve:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_invoke, serve, {"sleep": 4, "echo": "slow"})
            time.sleep(0.2)
            fast = _invoke(serve, {"sleep": 0.1, "echo": "fast"})
            slow_status, slow_headers, slow_body = slow.result()
        after = _invoke(serve, {"echo": "after"})
        # The slow worker's late response is told the invocation timed out (410, as AWS's RIE).
        assert serve.wait_for_output(r'"posted": 410', timeout=15)
        late = next(line for line in serve.output().splitlines() if '"posted": 410' in line)
    assert json.loads(json.loads(late)["body"]) == {
        "errorType": "InvokeTimeout",
        "errorMessage": "Invoke timeout",
    }
    assert fast[2]["echo"] == "fast"
    assert slow_status == 200 and slow_headers["x-amz-function-error"] == "Unhandled"
    assert slow_body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in str(slow_body["errorMessage"])
    # The environment went on: the same process answers afterwards.
    assert after[2]["pid"] == fast[2]["pid"]


def test_a_crash_fails_every_invocation_in_flight_and_the_next_one_succeeds() -> None:
    with running_serve(*_managed("--concurrency", "1", limit=3)) as serve:
        with ThreadPoolExecutor(2) as pool:
            bystander = pool.submit(_invoke, serve, {"sleep": 3, "echo": "bystander"})
            time.sleep(0.3)
            crash = _invoke(serve, {"sleep": 0.2, "crash": True})
            caught = bystander.result()
        after = _invoke(serve, {"echo": "after"})
        assert serve.wait_for_output(r"init pid=", count=2)
    for status, headers, body in (crash, caught):
        assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"
        assert str(body["errorMessage"]).startswith(f"RequestId: {headers['x-amzn-requestid']} ")
    assert after[0] == 200 and after[2]["echo"] == "after"


def test_a_function_error_goes_to_its_caller_only() -> None:
    with running_serve(*_managed("--concurrency", "1", limit=2)) as serve:
        failed, fine = _together(serve, [{"sleep": 0.3, "error": True}, {"sleep": 0.3, "echo": 1}])
    assert failed[1]["x-amz-function-error"] == "Unhandled"
    assert failed[2] == {"errorType": "Boom", "errorMessage": "asked to fail"}
    assert "x-amz-function-error" not in fine[1] and fine[2]["echo"] == 1


def test_boto3_log_tail_holds_that_invocations_lines_only() -> None:
    with running_serve(*_managed("--concurrency", "1", limit=2)) as serve:
        client = lambda_client(serve)

        def call(echo: str) -> tuple[str, str]:
            response = client.invoke(
                FunctionName="lmi",
                Payload=json.dumps({"sleep": 0.5, "echo": echo}),
                LogType="Tail",
            )
            request_id = response["ResponseMetadata"]["RequestId"]
            return request_id, base64.b64decode(response["LogResult"]).decode()

        with ThreadPoolExecutor(2) as pool:
            tails = list(pool.map(call, ["one", "two"]))
    for (request_id, tail), echo, other in zip(tails, ["one", "two"], ["two", "one"], strict=True):
        assert f"START RequestId: {request_id}" in tail
        assert f"REPORT RequestId: {request_id}" in tail
        assert f"got {echo}" in tail and f"got {other}" not in tail


def test_a_bad_max_concurrency_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "lambdakit", "serve", "--max-concurrency", "0", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--max-concurrency: 0 is out of range (1 to 1024)" in result.stderr
    assert "Traceback" not in result.stderr


LMI_FUNCTIONS = REPO / "tests" / "runtime" / "functions"
#: id -> the runtime's command line after ``--`` (the handlers are tests/runtime/functions/lmi.py)
PYTHON_RUNTIMES: dict[str, tuple[str, ...]] = {
    "lambdakit-async": (sys.executable, "-m", "lambdakit.runtime", "lmi.asleepy"),
    "lambdakit-processes": (sys.executable, "-m", "lambdakit.runtime", "lmi.sleepy"),
    "awslambdaric": (sys.executable, "-m", "awslambdaric", "lmi.sleepy"),
}


@pytest.mark.parametrize("runtime", list(PYTHON_RUNTIMES))
def test_python_runtimes_serve_concurrent_invocations(runtime: str) -> None:
    """Our runtime and awslambdaric 4.x in their Managed Instances paths, under serve."""
    args = ("--function-name", "lmi", "--max-concurrency", "4", "--concurrency", "1")
    command = ("--code-dir", str(LMI_FUNCTIONS), *args, "--", *PYTHON_RUNTIMES[runtime])
    with running_serve(*command) as serve:
        cold = _invoke(serve, {"i": -1, "sleep": 0})[1]["x-amzn-requestid"]  # Init
        started = time.monotonic()
        answers = _together(serve, [{"i": i, "sleep": 1.0} for i in range(4)])
        elapsed = time.monotonic() - started
        assert serve.wait_for_output(r"^REPORT ", count=5)
        output = serve.output()
    assert [answer[2]["i"] for answer in answers] == [0, 1, 2, 3]
    for _, headers, answer in answers:
        assert answer["request_id"] == headers["x-amzn-requestid"]
    assert elapsed < 3.0, f"4 x 1 s took {elapsed:.2f} s: they did not overlap"
    inits = output.count("LMI-INIT")
    assert inits == (4 if runtime == "awslambdaric" else 1)  # awslambdaric imports per worker
    assert output.count("Init Duration") == 1
    report = next(line for line in output.splitlines() if "Init Duration" in line)
    assert f"REPORT RequestId: {cold}\t" in report  # on the invocation that found it cold


def test_extensions_and_telemetry_behave_as_in_managed_instances(
    listener: tuple[int, list[dict[str, object]]],
) -> None:
    port, records = listener
    extensions = REPO / "tests" / "fixtures" / "extensions" / "managed"
    args = ("--extensions-dir", str(extensions), "--env", f"TELEMETRY_PORT={port}")
    with running_serve(*_managed(*args, "--concurrency", "1", limit=2)) as serve:
        answers = _together(serve, [{"sleep": 0.3, "echo": 0}, {"sleep": 0.3, "error": True}])
        ids = sorted(headers["x-amzn-requestid"] for _, headers, _ in answers)
        failed_id = answers[1][1]["x-amzn-requestid"]
        deadline = time.monotonic() + 10
        while sum(1 for r in records if r["type"] == "platform.report") < 2:
            assert time.monotonic() < deadline, records
            time.sleep(0.05)
        assert serve.stop() == 0
        output = serve.output()
    # Registering for INVOKE is refused as AWS's RIE does in this mode; SHUTDOWN alone is fine.
    assert re.search(r'invoke-register: \{"errorMessage": ?"INVOKE: ErrorInvalidEventType"', output)
    assert "Extension.InvalidEventType" in output and "} 403" in output
    assert "[lmi-ext] old-schema: 400" in output  # Managed Instances need schema 2025-01-29
    assert "[lmi-ext] logs-api: 404" in output  # and have no Logs API
    assert "[lmi-ext] subscribed: 200" in output
    events = [line for line in output.splitlines() if line.startswith("[lmi-ext] event")]
    assert len(events) == 1 and '"SHUTDOWN"' in events[0], events  # never an INVOKE
    by_type: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_type.setdefault(str(record["type"]), []).append(record)
    for kind in ("platform.start", "platform.report"):
        got = sorted(str(r["record"]["requestId"]) for r in by_type[kind])  # type: ignore[index]
        assert got == ids, (kind, records)
    assert "platform.runtimeDone" not in by_type  # not emitted in this mode
    reports = {r["record"]["requestId"]: r["record"] for r in by_type["platform.report"]}  # type: ignore[index]
    assert reports[failed_id]["status"] == "error"  # type: ignore[index]
    assert reports[failed_id]["errorType"] == "Boom"  # type: ignore[index]
    assert reports[answers[0][1]["x-amzn-requestid"]]["status"] == "success"  # type: ignore[index]
    init = by_type["platform.initStart"][0]["record"]
    assert init["initializationType"] == "lambda-managed-instances"  # type: ignore[index]


def test_the_example_runs_eight_invocations_at_once_in_one_environment() -> None:
    example = REPO / "examples" / "managed-instances"
    args = ("app.async_handler", "--code-dir", str(example), "--function-name", "lmi")
    with running_serve(*args, "--max-concurrency", "8", "--concurrency", "1") as serve:
        _invoke(serve, {"sleep": 0})  # Init
        started = time.monotonic()
        answers = _together(serve, [{"sleep": 0.5} for _ in range(8)])
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"8 x 0.5 s took {elapsed:.2f} s"
    assert len({answer[2]["request_id"] for answer in answers}) == 8
    assert all(0 < int(str(answer[2]["remaining"])) <= 3000 for answer in answers)


def test_an_environment_whose_every_worker_is_stuck_is_replaced() -> None:
    """A handler that never returns holds its worker; callers after it are still served."""
    with running_serve(*_managed("--timeout", "1", "--concurrency", "1", limit=1)) as serve:
        with ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(_invoke, serve, {"sleep": 60, "echo": "stuck"})
            time.sleep(0.3)
            started = time.monotonic()
            waiting = _invoke(serve, {"echo": "next"})
            waited = time.monotonic() - started
            assert stuck.result()[2]["errorType"] == "Sandbox.Timedout"
        assert serve.wait_for_output(r"init pid=", count=2)
        output = serve.output()
    assert waiting[0] == 200 and waiting[2]["echo"] == "next"
    assert waited < 10, f"the caller waited {waited:.1f} s"
    assert "every worker is still running an invocation that timed out" in output


def test_a_socket_opened_at_import_is_a_warning_in_process_mode(tmp_path: Path) -> None:
    """Forked workers would share it: the runtime says so once, at start."""
    (tmp_path / "shared.py").write_text(
        "import socket\nCONNECTION = socket.socket()\n\n"
        "def handler(event, context):\n    return {'ok': True}\n"
    )
    args = ("shared.handler", "--code-dir", str(tmp_path), "--function-name", "lmi")
    with running_serve(*args, "--max-concurrency", "2") as serve:
        answer = _invoke(serve, {})
        assert serve.wait_for_output(r"forked workers share those sockets")
    assert answer[2] == {"ok": True}
    assert "opened 1 socket(s)" in serve.output()
