"""Extensions API, the freeze, and the Telemetry API, against real processes."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from tests.serving import REPO, bash_function, running_serve

EXTENSIONS = REPO / "tests" / "fixtures" / "extensions"
COUNTER = REPO / "tests" / "fixtures" / "functions" / "counter"


def test_an_external_extension_gets_invoke_for_each_invocation_and_shutdown_at_stop() -> None:
    with running_serve(
        *bash_function("--function-name", "ext", "--extensions-dir", str(EXTENSIONS / "bash"))
    ) as serve:
        ids = [serve.invoke("ext")[1]["x-amzn-requestid"] for _ in range(3)]
        assert serve.wait_for_output(r"\[bash-ext\] event .*INVOKE", count=3)
        serve.stop()
    log = serve.output()
    assert "[bash-ext] registered; handler is hidden" in log  # _HANDLER is runtime-only
    for request_id in ids:
        event_line = next(
            line for line in log.splitlines() if request_id in line and "event" in line
        )
        event = json.loads(event_line.split("event ", 1)[1])
        assert event["eventType"] == "INVOKE"
        assert event["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:ext"
        assert event["tracing"]["type"] == "X-Amzn-Trace-Id"
        assert event["deadlineMs"] > time.time() * 1000 - 60_000
    shutdown = next(line for line in log.splitlines() if "SHUTDOWN" in line)
    assert json.loads(shutdown.split("event ", 1)[1])["shutdownReason"] == "spindown"
    assert "[bash-ext] shutting down" in log


def test_the_caller_is_answered_before_an_extension_finishes_and_the_environment_waits() -> None:
    with running_serve(
        *bash_function(
            "--function-name",
            "ext",
            "--concurrency",
            "1",
            "--timeout",
            "10",
            "--extensions-dir",
            str(EXTENSIONS / "bash"),
            "--env",
            "EXT_WORK_SECONDS=1",
        )
    ) as serve:
        serve.invoke("ext")  # cold start out of the way
        assert serve.wait_for_output(r"^REPORT", timeout=15)
        started = time.monotonic()
        first = serve.invoke("ext")
        answered = time.monotonic() - started
        second = serve.invoke("ext")
        second_done = time.monotonic() - started
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=15)
    assert first[0] == second[0] == 200
    assert answered < 0.6  # the extension's 1 s of work happens after the response
    assert second_done > 0.9  # the environment was held until the extension called next
    reports = [line for line in serve.output().splitlines() if line.startswith("REPORT")]
    duration = float(re.search(r"Duration: ([\d.]+) ms", reports[1]).group(1))  # type: ignore[union-attr]
    assert duration >= 900  # REPORT bills the post-response phase


def test_an_extension_exceeding_the_timeout_resets_the_environment() -> None:
    with running_serve(
        *bash_function(
            "--function-name",
            "ext",
            "--timeout",
            "1",
            "--extensions-dir",
            str(EXTENSIONS / "bash"),
            "--env",
            "EXT_WORK_SECONDS=2",
        )
    ) as serve:
        # The extension works 2 s after each INVOKE: past the 1 s timeout, within the 2 s
        # shutdown budget, so it sees SHUTDOWN (reason timeout) when it calls next.
        status, headers, _ = serve.invoke("ext")
        assert serve.wait_for_output(r"SHUTDOWN", timeout=15)
    assert status == 200 and "x-amz-function-error" not in headers  # the response was on time
    shutdown = next(line for line in serve.output().splitlines() if '"SHUTDOWN"' in line)
    assert json.loads(shutdown.split("event ", 1)[1])["shutdownReason"] == "timeout"
    assert re.search(r"REPORT .*Status: timeout", serve.output())


@pytest.mark.parametrize(("freeze", "low", "high"), [(True, 0, 30), (False, 60, 200)])
def test_the_freeze_stops_background_threads_between_invocations(
    freeze: bool, low: int, high: int
) -> None:
    flags = () if freeze else ("--no-freeze",)
    with running_serve(
        "--function-name",
        "counter",
        "--code-dir",
        str(COUNTER),
        *flags,
        "--",
        sys.executable,
        "-m",
        "awslambdaric",
        "counter.handler",
    ) as serve:
        first = json.loads(serve.invoke("counter")[2])["count"]
        time.sleep(1.0)
        second = json.loads(serve.invoke("counter")[2])["count"]
    assert low <= second - first <= high, (first, second)


def _subscribed_function(port: int) -> tuple[str, ...]:
    """The bash function with an extension subscribing the listener on ``port``."""
    return bash_function(
        "--function-name",
        "tele",
        "--extensions-dir",
        str(EXTENSIONS / "telemetry"),
        "--env",
        f"TELEMETRY_PORT={port}",
    )


def test_a_telemetry_subscriber_gets_platform_records_and_function_lines(
    listener: tuple[int, list[dict[str, object]]],
) -> None:
    port, records = listener
    # One environment: records are ordered per environment, and on a busy machine a second
    # invoke can arrive while the first environment still finishes its phase (a second one
    # would start, and the two subscriptions' batches would interleave at the listener).
    with running_serve(*_subscribed_function(port), "--concurrency", "1") as serve:
        ids = [serve.invoke("tele")[1]["x-amzn-requestid"] for _ in range(3)]
        assert serve.wait_for_output(r"\[subscriber\] subscribed: 200")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum(1 for r in records if r["type"] == "platform.report") == 3:
                break
            time.sleep(0.05)
    by_type: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_type.setdefault(str(record["type"]), []).append(record)
    for kind in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert [r["record"]["requestId"] for r in by_type[kind]] == ids, (kind, records)  # type: ignore[index]
    assert [r["record"] for r in by_type["function"]] == ["got an event"] * 3
    assert "platform.initStart" in by_type and "platform.initReport" in by_type
    report: dict[str, dict[str, float]] = by_type["platform.report"][0]["record"]  # type: ignore[assignment]
    assert set(report["metrics"]) >= {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
        "initDurationMs",
    }


def test_extensions_api_errors(tmp_path: Path) -> None:
    """Registration rules, checked from inside a runtime (an internal extension)."""
    script = tmp_path / "bootstrap"
    script.write_text(
        """#!/usr/bin/env python3
import json, os, urllib.request, urllib.error
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
def call(method, path, headers=None, body=b""):
    request = urllib.request.Request(api + path, data=body if method != "GET" else None,
                                     method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
results = {}
s, h, b = call("POST", "/2020-01-01/extension/register", {"Lambda-Extension-Name": "inner",
               "Lambda-Extension-Accept-Feature": "accountId"}, b'{"events": ["INVOKE"]}')
results["register"] = [s, json.loads(b)]
ident = h["Lambda-Extension-Identifier"]
for name, events in (("", "[]"), ("inner", "[]"), ("other", '["SHUTDOWN"]'), ("bad", '["NOPE"]')):
    s, h, b = call("POST", "/2020-01-01/extension/register", {"Lambda-Extension-Name": name},
                   ('{"events": %s}' % events).encode())
    results["register " + (name or "empty")] = [s, json.loads(b)["errorType"]]
s, h, b = call("GET", "/2020-01-01/extension/event/next")
results["next without id"] = [s, json.loads(b)["errorType"]]
s, h, b = call("GET", "/2020-01-01/extension/event/next", {"Lambda-Extension-Identifier": "x"})
results["next bad id"] = [s, json.loads(b)["errorType"]]
s, h, b = call("POST", "/2020-01-01/extension/init/error", {"Lambda-Extension-Identifier": ident})
results["init error without type"] = [s, json.loads(b)["errorType"]]
s, h, b = call("PUT", "/2022-07-01/telemetry", {"Lambda-Extension-Identifier": ident},
               b'{"schemaVersion": "2022-12-13", "types": ["platform"],'
               b' "buffering": {"maxItems": 5},'
               b' "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9/x"}}')
results["telemetry bad buffering"] = [s, json.loads(b)["errorType"], json.loads(b)["errorMessage"]]
with open(os.environ["RESULTS"], "w") as out:
    json.dump(results, out)
# Be a (broken) runtime: exit, so the invocation reports it.
"""
    )
    script.chmod(0o755)
    results_file = tmp_path / "results.json"
    with running_serve(
        "--function-name", "api", "--bootstrap", str(script), "--env", f"RESULTS={results_file}"
    ) as serve:
        serve.invoke("api")
    results = json.loads(results_file.read_text())
    assert results["register"] == [
        200,
        {
            "functionName": "api",
            "functionVersion": "$LATEST",
            "handler": "",
            "accountId": "123456789012",
        },
    ]
    assert results["register empty"] == [403, "Extension.InvalidExtensionName"]
    assert results["register inner"] == [403, "Extension.InvalidExtensionState"]
    assert results["register other"] == [403, "Extension.InvalidEventType"]
    assert results["register bad"] == [403, "Extension.InvalidEventType"]
    assert results["next without id"] == [403, "Extension.MissingExtensionIdentifier"]
    assert results["next bad id"] == [403, "Extension.InvalidExtensionIdentifier"]
    assert results["init error without type"] == [403, "Extension.MissingHeader"]
    status, kind, message = results["telemetry bad buffering"]
    assert (status, kind) == (400, "ValidationError")
    assert "buffering.maxItems" in message


def test_telemetry_reaches_a_subscriber_before_its_environment_freezes(
    listener: tuple[int, list[dict[str, object]]],
) -> None:
    port, records = listener
    with running_serve(*_subscribed_function(port)) as serve:
        request_id = serve.invoke("tele")[1]["x-amzn-requestid"]
        deadline = time.monotonic() + 3  # no second invocation comes to thaw it
        while time.monotonic() < deadline and not any(
            r["type"] == "platform.report" for r in records
        ):
            time.sleep(0.05)
        delivered_while_idle = [r["type"] for r in records]
    assert "platform.report" in delivered_while_idle
    reports = [r for r in records if r["type"] == "platform.report"]
    assert [r["record"]["requestId"] for r in reports] == [request_id]  # type: ignore[index]


def test_init_waits_for_a_slow_extension_to_register() -> None:
    with running_serve(
        *bash_function("--function-name", "ext", "--extensions-dir", str(EXTENSIONS / "slow"))
    ) as serve:
        request_id = serve.invoke("ext")[1]["x-amzn-requestid"]
        assert serve.wait_for_output(rf"\[slow-ext\] event .*{request_id}")
    log = serve.output()
    assert re.search(r"\[slow-ext\] registered as [0-9a-f-]{36}", log)
    assert log.index("[slow-ext] registered") < log.index(f"START RequestId: {request_id}")


def test_a_crash_sends_shutdown_with_reason_failure() -> None:
    with running_serve(
        *bash_function(
            "--function-name",
            "ext",
            "--extensions-dir",
            str(EXTENSIONS / "bash"),
            handler="function.crash",
        )
    ) as serve:
        _, _, body = serve.invoke("ext")
        assert serve.wait_for_output(r"\[bash-ext\] event .*SHUTDOWN", timeout=15)
    assert json.loads(body)["errorType"] == "Runtime.ExitError"
    shutdown = next(line for line in serve.output().splitlines() if '"SHUTDOWN"' in line)
    event = json.loads(shutdown.split("event ", 1)[1])
    assert event["shutdownReason"] == "failure"
    assert event["deadlineMs"] > time.time() * 1000 - 10_000
