"""Responses: UTF-8 kept, Decimal exact, NaN refused clearly, bytes passed through."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from lambdakit.runtime import fastjson
from lambdakit.runtime.errors import FaultError
from lambdakit.runtime.marshal import marshal_response, to_json, unmarshal_event
from tests.runtime.support import FUNCTION, make_code_dir, serve_handler


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("marshal"))


def test_utf8_is_kept_where_awslambdaric_escapes(code_dir: Path) -> None:
    bodies = {}
    for runtime in ("lambdakit", "awslambdaric"):
        with serve_handler(code_dir, "app.utf8", runtime) as serve:
            status, _, bodies[runtime] = serve.invoke(FUNCTION, '{"k": "ü"}'.encode())
        assert status == 200
    assert "héllo wörld ✓".encode() in bodies["lambdakit"]
    assert '"echo": {"k": "ü"}'.encode() in bodies["lambdakit"]
    assert b"\\u00e9" in bodies["awslambdaric"]  # the difference this feature is about
    assert json.loads(bodies["lambdakit"]) == json.loads(bodies["awslambdaric"])


def test_decimal_is_exact_and_nan_is_a_marshal_error(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.decimals") as serve:
        _, _, body = serve.invoke(FUNCTION, b"{}")
    assert body == (b'{"price": 1.10, "big": 12345678901234567890.123456789, "n": [1]}')
    with serve_handler(code_dir, "app.nan") as serve:
        _, headers, body = serve.invoke(FUNCTION, b"{}")
    error = json.loads(body)
    assert headers.get("x-amz-function-error") == "Unhandled"
    assert error["errorType"] == "Runtime.MarshalError"
    assert error["errorMessage"].startswith("Unable to marshal response: NaN and Infinity")


def test_bytes_are_sent_as_is(code_dir: Path) -> None:
    with serve_handler(code_dir, "app.raw_bytes") as serve:
        status, _, body = serve.invoke(FUNCTION, b"{}")
    assert status == 200
    assert json.loads(body) == {"raw": True, "event_type": "dict"}


def test_to_json_decimal_paths() -> None:
    value = {1: [Decimal("-0.000"), (Decimal("1E+3"), "é")], None: {"x": Decimal(5)}, 2.5: True}
    assert to_json(value) == '{"1": [-0.000, [1E+3, "é"]], "null": {"x": 5}, "2.5": true}'
    assert json.loads(to_json(value))["1"][1][0] == 1000


@pytest.mark.parametrize(
    "bad", [float("inf"), Decimal("NaN"), [Decimal("1"), Decimal("-Infinity")]]
)
def test_non_finite_numbers_are_refused(bad: object) -> None:
    with pytest.raises(FaultError) as info:
        marshal_response({"v": bad})
    assert info.value.error_type == "Runtime.MarshalError"


def test_unknown_types_give_the_stdlib_message() -> None:
    with pytest.raises(FaultError) as info:
        marshal_response({"v": {1, 2}, "d": Decimal(1)})
    assert (
        info.value.message
        == "Unable to marshal response: Object of type set is not JSON serializable"
    )


def test_events() -> None:
    assert unmarshal_event(b'{"a": [1, "\\u00e9"]}', "application/json") == {"a": [1, "é"]}
    assert unmarshal_event(b"\x00raw", "application/octet-stream") == b"\x00raw"
    with pytest.raises(FaultError) as info:
        unmarshal_event(b"{nope", "application/json")
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert info.value.message.startswith("Unable to unmarshal input: Expecting property name")


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": [1, 2.5, "\\u00e9", null, true, -0.0, 1e400]}',
        b" [1] \n",
        b'"x"',
        "{}",
        b"NaN",
        b"\xef\xbb\xbf{}",
    ],
)
def test_fastjson_loads_like_the_stdlib(text: bytes | str) -> None:
    assert repr(fastjson.loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", [b"", b"{", b"[1] x", b"\xff", b'{"a" 1}'])
def test_fastjson_errors_like_the_stdlib(text: bytes) -> None:
    with pytest.raises(Exception) as ours:
        fastjson.loads(text)
    with pytest.raises(Exception) as theirs:
        json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


def test_fastjson_dumps_like_the_stdlib() -> None:
    value = {"a": [1, 2.5, "é\n", None, True], "b": {1: 2}, "c": ("t",)}
    assert fastjson.dumps(value) == json.dumps(value, ensure_ascii=False)
    assert fastjson.dumps(value, ensure_ascii=True) == json.dumps(value)
    assert fastjson.dumps("é") == json.dumps("é", ensure_ascii=False)
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        fastjson.dumps(loop)
