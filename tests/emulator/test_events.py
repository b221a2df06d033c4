"""Event invocations: 202 at once, durable across SIGKILL, retries, destinations."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.serving import BASH_RUNTIME, REPO, bash_function, lambda_client, running_serve

EVENT = {"X-Amz-Invocation-Type": "Event"}


def _lines(path: Path, count: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return path.read_text().splitlines() if path.exists() else []


def test_an_event_is_answered_202_at_once_and_then_runs(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    with running_serve(
        *bash_function(
            "--function-name",
            "later",
            "--env",
            f"RECORD_FILE={record}",
            handler="function.record_slow",
        )
    ) as serve:
        started = time.monotonic()
        status, headers, body = serve.invoke("later", b'{"n": 1}', EVENT)
        elapsed = time.monotonic() - started
        assert _lines(record, 1) == ['{"n": 1}']
        response = lambda_client(serve).invoke(
            FunctionName="later", InvocationType="Event", Payload=b'{"n": 2}'
        )
        assert _lines(record, 2)[1] == '{"n": 2}'
    assert status == 202 and body == b""
    assert elapsed < 0.4  # the function takes 0.5 s
    assert len(headers["x-amzn-requestid"]) == 36
    assert response["StatusCode"] == 202


def test_event_payloads_over_1_mb_are_413(tmp_path: Path) -> None:
    with running_serve(*bash_function("--function-name", "later")) as serve:
        status, headers, _ = serve.invoke("later", b'"' + b"a" * (1024 * 1024) + b'"', EVENT)
    assert (status, headers["x-amzn-errortype"]) == (413, "RequestTooLargeException")


def test_a_failing_event_is_tried_3_times_then_sent_to_the_failure_destination(
    tmp_path: Path,
) -> None:
    failures = tmp_path / "failures.jsonl"
    state = tmp_path / "state"
    with running_serve(
        *bash_function(
            "--function-name",
            "flaky",
            "--retry-backoff",
            "0.2",
            "--on-failure",
            str(failures),
            "--state-dir",
            str(state),
            handler="function.fail",
        )
    ) as serve:
        _, headers, _ = serve.invoke("flaky", b'{"job": 7}', EVENT)
        lines = _lines(failures, 1)
        start = f"START RequestId: {headers['x-amzn-requestid']}"
        # The log reaches stdout in batches: the destination may be written before the last START.
        serve.wait_for_output(re.escape(start), count=3)
        attempts = serve.output().count(start)
    listing = subprocess.run(
        [sys.executable, "-m", "lambdakit", "events", "--state-dir", str(state), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert attempts == 3  # the first try and two retries, with the same request id
    record = json.loads(lines[0])
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": headers["x-amzn-requestid"],
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:flaky:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"job": 7}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"] == {
        "errorMessage": "handler failed: boom",
        "errorType": "HandlerFailed",
    }
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert (listed["requestId"], listed["state"], listed["condition"]) == (
        headers["x-amzn-requestid"],
        "failed",
        "RetriesExhausted",
    )


def test_success_goes_to_another_function_as_its_event(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    config = tmp_path / "lambdakit.toml"
    config.write_text(f"""
[functions.work]
code_dir = "{BASH_RUNTIME}"
handler = "function.echo_event"
on_success = "function:audit"

[functions.audit]
code_dir = "{BASH_RUNTIME}"
handler = "function.record"
env = {{ RECORD_FILE = "{record}" }}
""")
    with running_serve("--config", str(config)) as serve:
        _, headers, _ = serve.invoke("work", b'{"order": 1}', EVENT)
        lines = _lines(record, 1)
    destination = json.loads(lines[0])
    assert destination["requestContext"]["requestId"] == headers["x-amzn-requestid"]
    assert destination["requestContext"]["condition"] == "Success"
    assert destination["requestPayload"] == {"order": 1}
    assert destination["responsePayload"] == {"order": 1}


def test_invoke_async_is_an_event_invocation(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    with running_serve(
        *bash_function(
            "--function-name", "legacy", "--env", f"RECORD_FILE={record}", handler="function.record"
        )
    ) as serve:
        response = lambda_client(serve).invoke_async(
            FunctionName="legacy", InvokeArgs=b'{"old": 1}'
        )
        assert _lines(record, 1) == ['{"old": 1}']
    assert response["Status"] == 202


def test_an_event_accepted_while_busy_survives_sigkill_and_runs_exactly_once(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record.txt"
    state = tmp_path / "state"
    flags = bash_function(
        "--function-name",
        "busy",
        "--concurrency",
        "1",
        "--state-dir",
        str(state),
        "--env",
        f"RECORD_FILE={record}",
        handler="function.record_slow",
    )
    with running_serve(*flags) as serve:

        def call_sync() -> None:
            with contextlib.suppress(OSError):  # serve is killed under it
                serve.invoke("busy", b'{"sync": 1}')

        sync = threading.Thread(target=call_sync)
        sync.start()
        assert serve.wait_for_output(r"^START RequestId")
        status, _, _ = serve.invoke("busy", b'{"event": 1}', EVENT)
        serve.stop(signal.SIGKILL)  # no shutdown at all
        sync.join(10)
    assert status == 202
    assert '{"event": 1}' not in (record.read_text() if record.exists() else "")
    with running_serve(*flags) as serve:
        lines = _lines(record, 1)
        time.sleep(1.0)  # nothing runs it a second time
        lines = record.read_text().splitlines()
    assert lines.count('{"event": 1}') == 1
