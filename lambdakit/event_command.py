"""``lambdakit event TYPE``: print a sample event of an AWS source, to invoke a function with.

``lambdakit event sqs --body hi | lambdakit invoke orders --event -``.  The events are built
from the sources' documented fields (:mod:`lambdakit.sample_events`); without a TYPE the command
lists the types.  Not to be confused with ``lambdakit events``, which lists the Event
(asynchronous) invocations a serve has stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lambdakit.command_support import EXIT_USAGE, Parser, UsageError, fail
from lambdakit.sample_events import TYPES, Choices

_EPILOG = """\
types:
{types}
examples:
  lambdakit event sqs --body '{{"orderId": 7}}' | lambdakit invoke orders --event -
  lambdakit event api-http --method POST --path /orders --body '{{"n": 1}}' > post.json
  lambdakit event s3 --bucket photos --key 'raw/cat 1.jpg'

Each option applies to the types that have that field; the others say so.
(lambdakit events, with an s, lists the Event invocations serve has stored.)
"""

#: Option flag -> (Choices field, help).  The field's default is the Choices default.
_OPTIONS: Mapping[str, tuple[str, str]] = {
    "--method": ("method", "HTTP method (api-*)"),
    "--path": ("path", "request path (api-*)"),
    "--query": ("query", "query string, a=1&b=2 (api-*)"),
    "--body": (
        "body",
        "request body (api-*), message body (sqs), message (sns), data "
        "(kinesis), the item's Message (dynamodb)",
    ),
    "--header": ("headers", "a request header NAME:VALUE, repeatable (api-*)"),
    "--bucket": ("bucket", "bucket name (s3)"),
    "--key": ("key", "object key, plain: it is URL-encoded as S3 sends it (s3)"),
    "--size": ("size", "object size in bytes (s3)"),
    "--queue": ("queue", "queue name in the ARN (sqs)"),
    "--topic": ("topic", "topic name in the ARN (sns)"),
    "--subject": ("subject", "message subject (sns)"),
    "--source": ("source", "event source (eventbridge)"),
    "--detail-type": ("detail_type", "detail-type (eventbridge)"),
    "--detail": ("detail", "detail, a JSON object (eventbridge)"),
    "--table": ("table", "table name in the stream ARN (dynamodb)"),
    "--stream": ("stream", "stream name in the ARN (kinesis)"),
    "--partition-key": ("partition_key", "partition key (kinesis)"),
    "--region": ("region", "AWS region (default us-east-1)"),
    "--account": ("account", "account id in ARNs (default 123456789012)"),
}


def _parser() -> argparse.ArgumentParser:
    types = "".join(f"  {name:<12} {sample.summary}\n" for name, sample in TYPES.items())
    parser = Parser(
        prog="lambdakit event",
        description="Print a sample event of an AWS source (API Gateway, SQS, SNS, S3, "
        "EventBridge, DynamoDB Streams, Kinesis) as JSON, to invoke a function with. "
        "Without TYPE: list the types.",
        epilog=_EPILOG.format(types=types),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("type", nargs="?", metavar="TYPE", help="one of the types below")
    parser.add_argument("--message", dest="body", help="the same as --body (sns, sqs)")
    for flag, (name, text) in _OPTIONS.items():
        extra: dict[str, Any] = {"action": "append"} if name == "headers" else {}
        if name == "size":
            extra["type"] = int
        parser.add_argument(flag, dest=name, help=text, **extra)
    parser.add_argument("--compact", action="store_true", help="one line, no indentation")
    return parser


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Print the event of ``lambdakit event TYPE [OPTIONS]``, or list the types."""
    try:
        args = _parser().parse_args(list(argv))
        if args.type is None:
            width = max(map(len, TYPES))
            for name, sample in TYPES.items():
                sys.stdout.write(f"{name:<{width}}  {sample.summary}\n")
            return 0
        event = _build(args)
    except UsageError as exc:
        fail(f"lambdakit event: error: {exc}")
        return EXIT_USAGE
    indent = None if args.compact else 2
    sys.stdout.write(json.dumps(event, indent=indent, ensure_ascii=False) + "\n")
    return 0


def _build(args: argparse.Namespace) -> dict[str, Any]:
    sample = TYPES.get(args.type)
    if sample is None:
        import difflib

        close = difflib.get_close_matches(args.type, list(TYPES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"TYPE: no sample event {args.type!r}{hint}; known: {', '.join(TYPES)}")
    chosen: dict[str, Any] = {}
    for flag, (name, _) in {"--message": ("body", ""), **_OPTIONS}.items():
        value = getattr(args, name)
        if value is None or name in chosen:
            continue
        if name not in sample.options:
            given = "--body/--message" if name == "body" else flag
            users = [t for t, s in TYPES.items() if name in s.options]
            raise UsageError(
                f"{given}: not a field of {sample.name} events (it applies to {', '.join(users)})"
            )
        chosen[name] = _value(flag, name, value)
    if "method" in chosen:
        chosen["method"] = chosen["method"].upper()
    return sample.build(Choices(**chosen))


def _value(flag: str, name: str, value: Any) -> Any:
    if name == "headers":
        pairs = {}
        for item in value:
            header, colon, text = item.partition(":")
            if not colon or not header.strip():
                raise UsageError(f"--header: expected NAME:VALUE, got {item!r}")
            pairs[header.strip()] = text.strip()
        return pairs
    if name == "detail":
        try:
            detail = json.loads(value)
        except ValueError as exc:
            raise UsageError(f"--detail: not JSON ({exc})") from None
        if not isinstance(detail, dict):
            raise UsageError("--detail: expected a JSON object")
        return detail
    if name == "size" and value < 0:
        raise UsageError("--size: expected 0 or more bytes")
    return value
