"""``lambdakit gateway``: boto3 and the AWS CLI, unchanged, through a gateway to two workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.amqp.broker import require_broker
from tests.amqp.workers import running_gateway, unique, workers
from tests.serving import REPO, Serve, lambda_client


@pytest.fixture(scope="module")
def url() -> str:
    return require_broker()


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    return {kind: unique(kind) for kind in ("echo", "fail", "record", "flaky")}


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="module")
def gateway(url: str, names: dict[str, str], record_dir: Path) -> Iterator[Serve]:
    records = {"RECORD_FILE": str(record_dir / "runs.jsonl")}
    functions: dict[str, dict[str, Any]] = {
        names["echo"]: {"handler": "app.echo", "concurrency": 2},
        names["fail"]: {"handler": "app.fail"},
        names["record"]: {
            "handler": "app.record",
            "env": records,
            "on_success": str(record_dir / "succeeded.jsonl"),
        },
        names["flaky"]: {
            "handler": "app.record",
            "env": records,
            "max_retry_attempts": 1,
            "retry_backoff": 0.2,
            "on_failure": str(record_dir / "failed.jsonl"),
        },
    }
    with workers(record_dir, url, functions, 2), running_gateway("--amqp", url) as front:
        yield front


def _lines(path: Path, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} did not get {count} line(s) in {timeout} s")


def test_boto3_request_response_through_the_gateway_reaches_both_workers(
    gateway: Serve, names: dict[str, str]
) -> None:
    client = lambda_client(gateway)
    instances = set()
    for n in range(16):
        response = client.invoke(
            FunctionName=names["echo"], Payload=json.dumps({"n": n, "sleep": 0.05}).encode()
        )
        body = json.loads(response["Payload"].read())
        assert response["StatusCode"] == 200 and "FunctionError" not in response
        assert body["event"]["n"] == n
        assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
        instances.add(body["instance"])
    assert instances == {"w0", "w1"}


def test_boto3_sees_function_errors_and_missing_functions(
    gateway: Serve, names: dict[str, str]
) -> None:
    client = lambda_client(gateway)
    failed = client.invoke(FunctionName=names["fail"], Payload=b"{}")
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=unique("missing"), Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName=names["echo"], Payload=b"not json")


def test_the_gateways_metrics_count_its_answers_by_function_and_status(
    gateway: Serve, names: dict[str, str]
) -> None:
    client = lambda_client(gateway)
    missing = unique("missing")
    before = _gateway_figures(gateway)
    for n in range(3):
        client.invoke(FunctionName=names["echo"], Payload=json.dumps({"n": n}).encode())
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=missing, Payload=b"{}")
    after = _gateway_figures(gateway)
    ok = ("lambdakit_gateway_requests_total", (names["echo"], "RequestResponse", "200"))
    assert after[ok] - before.get(ok, 0) == 3
    lost = ("lambdakit_gateway_requests_total", ("(not found)", "RequestResponse", "404"))
    assert after[lost] - before.get(lost, 0) == 1  # any name may be asked: one series for all
    trips = ("lambdakit_gateway_response_seconds_count", (names["echo"],))
    assert after[trips] - before.get(trips, 0) == 3
    assert after[("lambdakit_gateway_broker_connected", ())] == 1


def _gateway_figures(gateway: Serve) -> dict[tuple[str, tuple[str, ...]], float]:
    connection = gateway.connection()
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    keys = ("function", "type", "status")
    return {
        (sample.name, tuple(sample.labels[k] for k in keys if k in sample.labels)): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "le" not in sample.labels
    }


def test_boto3_dry_run_checks_the_function_exists(gateway: Serve, names: dict[str, str]) -> None:
    client = lambda_client(gateway)
    assert client.invoke(FunctionName=names["echo"], InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=unique("missing"), InvocationType="DryRun")


def test_boto3_event_invocations_run_once_and_reach_their_destination(
    gateway: Serve, names: dict[str, str], record_dir: Path
) -> None:
    client = lambda_client(gateway)
    response = client.invoke(
        FunctionName=names["record"], InvocationType="Event", Payload=b'{"event": 1}'
    )
    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["RequestId"]
    (success,) = [
        r
        for r in _lines(record_dir / "succeeded.jsonl", 1)
        if r["requestContext"]["requestId"] == request_id
    ]
    assert success["requestContext"]["condition"] == "Success"
    assert success["responsePayload"] == {"recorded": True}
    runs = [r for r in _lines(record_dir / "runs.jsonl", 1) if r["request_id"] == request_id]
    assert [r["event"] for r in runs] == [{"event": 1}]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=unique("missing"), InvocationType="Event", Payload=b"{}")


def test_failed_events_are_retried_then_sent_to_the_failure_destination(
    gateway: Serve, names: dict[str, str], record_dir: Path
) -> None:
    client = lambda_client(gateway)
    response = client.invoke(
        FunctionName=names["flaky"], InvocationType="Event", Payload=b'{"fail": true}'
    )
    request_id = response["ResponseMetadata"]["RequestId"]
    (failure,) = _lines(record_dir / "failed.jsonl", 1)
    assert failure["requestContext"]["requestId"] == request_id
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["responseContext"]["functionError"] == "Unhandled"
    runs = [r for r in _lines(record_dir / "runs.jsonl", 2) if r["request_id"] == request_id]
    assert len(runs) == 2  # the first attempt and one retry, with the same request id


def test_the_aws_cli_and_the_stream_api_through_the_gateway(
    gateway: Serve, names: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "aws"),
            "lambda",
            "invoke",
            "--endpoint-url",
            gateway.url,
            "--region",
            "us-east-1",
            "--function-name",
            names["echo"],
            "--payload",
            '{"from": "cli"}',
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["event"] == {"from": "cli"}
    stream = lambda_client(gateway).invoke_with_response_stream(
        FunctionName=names["echo"], Payload=b'{"streamed": 1}'
    )
    events = list(stream["EventStream"])
    payload = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    assert json.loads(payload)["event"] == {"streamed": 1}
    assert "InvokeComplete" in events[-1]


def test_a_gateway_without_a_broker_is_one_line_and_status_2() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdakit",
            "gateway",
            "--port",
            "0",
            "--amqp",
            "amqp://u:pw@127.0.0.1:1/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot reach the broker" in result.stderr
    assert ":pw@" not in result.stderr
