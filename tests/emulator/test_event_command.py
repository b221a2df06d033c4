"""``lambdakit event TYPE``: sample events that parse and carry the fields consumers read."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse
from typing import Any

import pytest

from lambdakit.sample_events import TYPES
from tests.serving import REPO


def _event(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdakit", "event", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


def _sample(*args: str) -> Any:
    result = _event(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", list(TYPES))
def test_every_sample_is_json(name: str) -> None:
    event = _sample(name)
    assert isinstance(event, dict) and event
    assert json.loads(_event(name, "--compact").stdout).keys() == event.keys()


def test_without_a_type_the_types_are_listed() -> None:
    result = _event()
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == list(TYPES)


def test_api_gateway_rest_v1() -> None:
    event = _sample("api-rest", "--method", "post", "--path", "/orders/7", "--query", "a=1&a=2",
                    "--body", '{"n": 1}', "--header", "X-Trace: t1")  # fmt: skip
    assert event["httpMethod"] == "POST" and event["path"] == "/orders/7"
    assert event["resource"] == "/{proxy+}" and event["pathParameters"] == {"proxy": "orders/7"}
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["headers"]["x-trace"] == "t1"
    assert event["multiValueHeaders"]["x-trace"] == ["t1"]
    assert event["body"] == '{"n": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["httpMethod"] == "POST" and context["stage"] == "prod"
    assert context["identity"]["sourceIp"] and context["requestId"]


def test_api_gateway_http_v2() -> None:
    event = _sample("api-http", "--method", "PUT", "--path", "items/1", "--query", "x=1&x=2")
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/items/1" and event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["requestContext"]["http"]["method"] == "PUT"
    assert event["requestContext"]["http"]["path"] == "/items/1"
    assert "body" not in event  # format 2.0 leaves absent fields out
    assert event["isBase64Encoded"] is False


def test_sqs() -> None:
    record = _sample("sqs", "--body", "hello", "--queue", "orders")["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["body"] == "hello"
    assert record["eventSourceARN"].endswith(":orders") and record["messageId"]
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"  # md5("hello")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


def test_sns() -> None:
    record = _sample("sns", "--message", "note", "--subject", "S")["Records"][0]
    assert record["EventSource"] == "aws:sns"
    assert record["Sns"]["Message"] == "note" and record["Sns"]["Subject"] == "S"
    assert record["Sns"]["TopicArn"].startswith("arn:aws:sns:us-east-1:123456789012:")


def test_s3_key_is_url_encoded_as_s3_sends_it() -> None:
    record = _sample("s3", "--bucket", "photos", "--key", "raw/cat 1.jpg")["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "photos"
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::photos"
    assert urllib.parse.unquote_plus(record["s3"]["object"]["key"]) == "raw/cat 1.jpg"
    assert record["s3"]["object"]["size"] == 1024


def test_eventbridge() -> None:
    event = _sample("eventbridge", "--source", "my.app", "--detail-type", "Thing Done",
                    "--detail", '{"id": 3}', "--region", "eu-west-1")  # fmt: skip
    assert event["source"] == "my.app" and event["detail-type"] == "Thing Done"
    assert event["detail"] == {"id": 3} and event["region"] == "eu-west-1"
    assert event["version"] == "0" and event["id"] and event["time"].endswith("Z")


def test_dynamodb_streams() -> None:
    record = _sample("dynamodb", "--table", "orders")["Records"][0]
    assert record["eventSource"] == "aws:dynamodb" and record["eventName"] == "INSERT"
    assert record["dynamodb"]["Keys"] == {"Id": {"N": "101"}}
    assert record["dynamodb"]["NewImage"]["Id"] == {"N": "101"}
    assert ":table/orders/stream/" in record["eventSourceARN"]


def test_kinesis_data_is_base64() -> None:
    record = _sample("kinesis", "--body", "payload 1", "--stream", "clicks")["Records"][0]
    assert record["eventSource"] == "aws:kinesis"
    assert base64.b64decode(record["kinesis"]["data"]) == b"payload 1"
    assert record["eventSourceARN"].endswith(":stream/clicks")
    assert record["eventID"].endswith(record["kinesis"]["sequenceNumber"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sq"], "no sample event 'sq' (did you mean sqs?)"),
        (["sqs", "--bucket", "b"], "--bucket: not a field of sqs events (it applies to s3)"),
        (["eventbridge", "--detail", "[1]"], "--detail: expected a JSON object"),
        (["eventbridge", "--detail", "{"], "--detail: not JSON"),
        (["api-rest", "--header", "nocolon"], "--header: expected NAME:VALUE"),
        (["s3", "--size", "x"], "--size"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = _event(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_help_tells_event_from_events() -> None:
    top = subprocess.run(
        [sys.executable, "-m", "lambdakit"], capture_output=True, text=True, timeout=30
    )
    assert "sample event" in top.stdout and "Event (asynchronous) invocations" in top.stdout
    assert "lambdakit events, with an s" in _event("--help").stdout
