"""Sample events of the AWS sources that invoke Lambda functions, from their documented fields.

Each builder returns the event a function receives from one source, with every field the
source's page documents and the values given (the rest are plausible: this call's time, fresh
ids, account 123456789012).  Sources:

- API Gateway REST API, proxy integration, payload format 1.0, and HTTP API, payload format 2.0:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
  and https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
- SQS: https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
- SNS: https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html
- S3 (``ObjectCreated:Put``): https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
- EventBridge: https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html
- DynamoDB Streams: https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html
- Kinesis Data Streams: https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html
"""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True)
class Choices:
    """What a caller may set; each builder reads the fields of its source."""

    region: str = "us-east-1"
    account: str = "123456789012"
    method: str = "GET"
    path: str = "/"
    query: str = ""
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    bucket: str = "example-bucket"
    key: str = "uploads/example.txt"
    size: int = 1024
    queue: str = "example-queue"
    topic: str = "example-topic"
    subject: str | None = None
    source: str = "com.example.orders"
    detail_type: str = "Order Placed"
    detail: Mapping[str, Any] = field(default_factory=lambda: {"orderId": "1234"})
    table: str = "example-table"
    stream: str = "example-stream"
    partition_key: str = "partition-1"


@dataclass(frozen=True)
class SampleType:
    """One source: its name on the command line, what it is, its builder and its options."""

    name: str
    summary: str
    build: Callable[[Choices], Event]
    #: The ``Choices`` fields that mean something for this source.
    options: tuple[str, ...]


def _now() -> float:
    return time.time()


def _iso(now: float, millis: bool = True) -> str:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{text}.{int(now * 1000) % 1000:03d}Z" if millis else text + "Z"


def _sequence() -> str:
    return str(uuid.uuid4().int)[:21]


# --- API Gateway -------------------------------------------------------------------------------
_API_ID = "abcdef1234"
_SOURCE_IP = "192.0.2.1"
_USER_AGENT = "lambdakit-sample"


def _request_headers(choices: Choices) -> dict[str, str]:
    domain = f"{_API_ID}.execute-api.{choices.region}.amazonaws.com"
    sent = {"accept": "*/*", "host": domain, "user-agent": _USER_AGENT}
    if choices.body is not None:
        sent["content-type"] = "application/json"
    return {**sent, **{k.lower(): v for k, v in choices.headers.items()}}


def _query_map(query: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(query, keep_blank_values=True)


def api_gateway_rest(choices: Choices) -> Event:
    """A REST API proxy integration request (payload format 1.0), on a ``/{proxy+}`` resource."""
    now = _now()
    sent = _request_headers(choices)
    query = _query_map(choices.query)
    path = "/" + choices.path.lstrip("/")
    stage = "prod"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": choices.method,
        "headers": sent,
        "multiValueHeaders": {name: [value] for name, value in sent.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": choices.account,
            "apiId": _API_ID,
            "domainName": sent["host"],
            "domainPrefix": _API_ID,
            "extendedRequestId": base64.b64encode(uuid.uuid4().bytes[:9]).decode(),
            "httpMethod": choices.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": _SOURCE_IP,
                "user": None,
                "userAgent": _USER_AGENT,
                "userArn": None,
            },
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "a1b2c3",
            "resourcePath": "/{proxy+}",
            "stage": stage,
        },
        "body": choices.body,
        "isBase64Encoded": False,
    }


def api_gateway_http(choices: Choices) -> Event:
    """An HTTP API request (payload format 2.0) on the ``$default`` route.

    Format 2.0 joins repeated headers and query values with commas and leaves out absent
    fields (``body``, ``queryStringParameters``, ``cookies``, ``pathParameters``).
    """
    now = _now()
    sent = _request_headers(choices)
    path = "/" + choices.path.lstrip("/")
    event: Event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": choices.query,
        "headers": sent,
    }
    if choices.query:
        event["queryStringParameters"] = {
            k: ",".join(v) for k, v in _query_map(choices.query).items()
        }
    event["requestContext"] = {
        "accountId": choices.account,
        "apiId": _API_ID,
        "domainName": sent["host"],
        "domainPrefix": _API_ID,
        "http": {
            "method": choices.method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": _SOURCE_IP,
            "userAgent": _USER_AGENT,
        },
        "requestId": base64.b64encode(uuid.uuid4().bytes[:9]).decode(),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if choices.body is not None:
        event["body"] = choices.body
    event["isBase64Encoded"] = False
    return event


# --- messaging ---------------------------------------------------------------------------------
def sqs(choices: Choices) -> Event:
    """One message from a standard queue."""
    body = choices.body if choices.body is not None else "Hello from SQS!"
    sent = str(int(_now() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": base64.b64encode(uuid.uuid4().bytes * 4).decode(),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": sent,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{choices.region}:{choices.account}:{choices.queue}",
                "awsRegion": choices.region,
            }
        ]
    }


def sns(choices: Choices) -> Event:
    """One notification from a topic."""
    topic = f"arn:aws:sns:{choices.region}:{choices.account}:{choices.topic}"
    subscription = f"{topic}:{uuid.uuid4()}"
    endpoint = f"https://sns.{choices.region}.amazonaws.com"
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription,
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": _iso(_now()),
                    "Signature": base64.b64encode(uuid.uuid4().bytes * 8).decode(),
                    "SigningCertUrl": f"{endpoint}/SimpleNotificationService-example.pem",
                    "MessageId": str(uuid.uuid4()),
                    "Message": choices.body if choices.body is not None else "Hello from SNS!",
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": f"{endpoint}/?Action=Unsubscribe&SubscriptionArn="
                    + urllib.parse.quote(subscription, safe=""),
                    "TopicArn": topic,
                    "Subject": choices.subject,
                },
            }
        ]
    }


def s3(choices: Choices) -> Event:
    """An ``ObjectCreated:Put`` notification (the key URL-encoded, as S3 sends it)."""
    now = _now()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": choices.region,
                "eventTime": _iso(now),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": _SOURCE_IP},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes * 3).decode(),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "lambdakit-sample",
                    "bucket": {
                        "name": choices.bucket,
                        "ownerIdentity": {"principalId": "A3EXAMPLE"},
                        "arn": f"arn:aws:s3:::{choices.bucket}",
                    },
                    "object": {
                        "key": urllib.parse.quote_plus(choices.key, safe="/"),
                        "size": choices.size,
                        "eTag": uuid.uuid4().hex,
                        "sequencer": f"{int(now * 1000):016X}",
                    },
                },
            }
        ]
    }


def eventbridge(choices: Choices) -> Event:
    """An event from a bus (a custom application's ``source`` and ``detail-type``)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": choices.detail_type,
        "source": choices.source,
        "account": choices.account,
        "time": _iso(_now(), millis=False),
        "region": choices.region,
        "resources": [],
        "detail": dict(choices.detail),
    }


# --- streams -----------------------------------------------------------------------------------
def dynamodb(choices: Choices) -> Event:
    """An ``INSERT`` record of a stream with ``NEW_AND_OLD_IMAGES``."""
    now = _now()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    keys = {"Id": {"N": "101"}}
    return {
        "Records": [
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": choices.region,
                "dynamodb": {
                    "ApproximateCreationDateTime": int(now),
                    "Keys": keys,
                    "NewImage": {**keys, "Message": {"S": choices.body or "New item!"}},
                    "SequenceNumber": _sequence(),
                    "SizeBytes": 26,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": (
                    f"arn:aws:dynamodb:{choices.region}:{choices.account}:table/"
                    f"{choices.table}/stream/{stamp}"
                ),
            }
        ]
    }


def kinesis(choices: Choices) -> Event:
    """One record of a data stream (its data base64-encoded, as Kinesis sends it)."""
    sequence = _sequence() + _sequence()
    data = choices.body if choices.body is not None else "Hello from Kinesis!"
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": choices.partition_key,
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data.encode()).decode(),
                    "approximateArrivalTimestamp": round(_now(), 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{choices.account}:role/lambda-role",
                "awsRegion": choices.region,
                "eventSourceARN": (
                    f"arn:aws:kinesis:{choices.region}:{choices.account}:stream/{choices.stream}"
                ),
            }
        ]
    }


_COMMON = ("region", "account")
#: Every source, in the order ``lambdakit event`` lists them.
TYPES: Mapping[str, SampleType] = {
    sample.name: sample
    for sample in (
        SampleType(
            "api-rest",
            "API Gateway REST API request, proxy integration (payload format 1.0)",
            api_gateway_rest,
            ("method", "path", "query", "body", "headers", *_COMMON),
        ),
        SampleType(
            "api-http",
            "API Gateway HTTP API request (payload format 2.0, as Function URLs send)",
            api_gateway_http,
            ("method", "path", "query", "body", "headers", *_COMMON),
        ),
        SampleType("sqs", "SQS message", sqs, ("body", "queue", *_COMMON)),
        SampleType("sns", "SNS notification", sns, ("body", "subject", "topic", *_COMMON)),
        SampleType(
            "s3", "S3 ObjectCreated:Put notification", s3, ("bucket", "key", "size", *_COMMON)
        ),
        SampleType(
            "eventbridge",
            "EventBridge event",
            eventbridge,
            ("source", "detail_type", "detail", *_COMMON),
        ),
        SampleType(
            "dynamodb", "DynamoDB Streams INSERT record", dynamodb, ("body", "table", *_COMMON)
        ),
        SampleType(
            "kinesis",
            "Kinesis Data Streams record",
            kinesis,
            ("body", "stream", "partition_key", *_COMMON),
        ),
    )
}
