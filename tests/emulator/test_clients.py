"""Real AWS clients against `lambdakit serve`: boto3 and the AWS CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import Serve, aws_cli, bash_function, lambda_client, running_serve


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with running_serve(*bash_function("--function-name", "echo", "--concurrency", "2")) as s:
        yield s


def test_boto3_invoke_returns_the_payload_and_request_id(serve: Serve) -> None:
    response = lambda_client(serve).invoke(FunctionName="echo", Payload=b'{"from": "boto3"}')
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == {"from": "boto3"}
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    request_id = response["ResponseMetadata"]["RequestId"]
    assert serve.wait_for_output(rf"^START RequestId: {request_id} ")


def test_boto3_invoke_by_arn_with_qualifier(serve: Serve) -> None:
    response = lambda_client(serve).invoke(
        FunctionName="arn:aws:lambda:us-east-1:123456789012:function:echo",
        Qualifier="$LATEST",
        Payload=b"[]",
    )
    assert json.loads(response["Payload"].read()) == []


def test_boto3_raises_the_named_service_errors(serve: Serve) -> None:
    client = lambda_client(serve)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="missing", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"not json")


def test_boto3_sees_function_errors() -> None:
    with running_serve(*bash_function("--function-name", "f", handler="function.fail")) as s:
        response = lambda_client(s).invoke(FunctionName="f", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "HandlerFailed"


def test_aws_cli_invoke(serve: Serve, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = aws_cli(
        serve, "invoke", "--function-name", "echo", "--payload", '{"from": "cli"}', str(out)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"from": "cli"}
