"""Telemetry API subscriptions are validated in memory; every refusal names what is wrong."""

from __future__ import annotations

import json

import pytest

from lambdakit.emulator.telemetry import TELEMETRY_SCHEMAS, parse_subscription

VALID = {
    "schemaVersion": "2022-12-13",
    "types": ["platform", "function"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/"},
}


def test_a_valid_subscription_is_read() -> None:
    types, buffering, destination = parse_subscription(
        json.dumps(VALID).encode(), TELEMETRY_SCHEMAS
    )
    assert types == {"platform", "function"}
    assert (buffering.max_items, destination.port) == (1000, 8080)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "the body is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not JSON"),  # deeper than the parser goes
        (b"[]", "the body must be a JSON object"),
    ],
    ids=["truncated", "too deep", "not an object"],
)
def test_bad_bodies_are_refused_by_name(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_subscription(body, TELEMETRY_SCHEMAS)
