"""What a runtime's posts mean to the caller, in memory: pure functions, odd input included."""

from __future__ import annotations

import base64
import json

import pytest

from lambdakit.emulator import runtime_results
from lambdakit.wire import headers

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("error_type", "body", "expected_type", "passed_through"),
    [
        ("Fn.Failed", b'{"errorMessage": "m", "errorType": "Fn.Failed"}', "Fn.Failed", True),
        ("", b'{"errorMessage": "m", "errorType": "FromBody"}', "FromBody", True),
        ("Fn.Failed", b"not json", "Fn.Failed", False),
        ("", b"[1, 2]", "Runtime.Unknown", False),
        ("Fn.Deep", DEEP, "Fn.Deep", False),  # nested deeper than the parser goes
    ],
    ids=["json object", "type from the body", "not json", "not an object", "too deep"],
)
def test_an_error_post_becomes_lambdas_error_json(
    error_type: str, body: bytes, expected_type: str, passed_through: bool
) -> None:
    result = runtime_results.error_result(error_type, body)
    assert (result.function_error, result.error_type) == ("Unhandled", expected_type)
    assert (result.body == body) is passed_through
    assert isinstance(json.loads(result.body), dict)


def test_stream_trailers_report_errors_and_odd_bodies_are_replaced() -> None:
    assert runtime_results.trailer_error({}) is None
    encoded = base64.b64encode(DEEP).decode()
    trailers = {headers.FUNCTION_ERROR_TYPE: "Fn.Deep", headers.FUNCTION_ERROR_BODY: encoded}
    result = runtime_results.trailer_error(trailers)
    assert result is not None and result.error_type == "Fn.Deep"
    assert json.loads(result.body)["errorType"] == "Fn.Deep"


def test_too_large_and_truncated_are_the_platforms_errors() -> None:
    large = runtime_results.too_large(7_000_000, 6_291_556)
    assert large.error_type == "Function.ResponseSizeTooLarge"
    assert "7000000 bytes" in json.loads(large.body)["errorMessage"]
    cut = runtime_results.truncated("r-1")
    assert cut.error_type == "Runtime.TruncatedResponse"
