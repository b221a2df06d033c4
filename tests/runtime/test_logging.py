"""Function logs: request id in records, text and JSON formats, levels, unbuffered print."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler

_RECORD = re.compile(r"^\[(\w+)\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t([\w-]*)\t(.*)$")


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_code_dir(tmp_path_factory.mktemp("logging"))


def _records(output: str) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(_RECORD.match, output.splitlines()) if m]  # type: ignore[misc]


def _text_run(code_dir: Path, runtime: str) -> tuple[str, str]:
    extra = ("--env", "AWS_LAMBDA_LOG_LEVEL=DEBUG")
    with serve_handler(code_dir, "app.logs", runtime, *extra) as serve:
        _, headers, _ = invoke_json(serve, {"n": 1})
        assert serve.wait_for_output(r"^REPORT RequestId", timeout=10)
        return headers["x-amzn-requestid"], serve.output()


def test_text_records_carry_the_request_id(code_dir: Path) -> None:
    request_id, output = _text_run(code_dir, "lambdakit")
    records = _records(output)
    assert [(level, message) for level, _, message in records] == [
        ("INFO", "root info é"),
        ("DEBUG", "debug from app"),
        ("WARNING", "warning with extra"),
        ("ERROR", "caught"),
    ]
    assert {rid for _, rid, _ in records} == {request_id}
    assert "printed line 1" in output
    assert "KeyError: 'missing'" in output


def test_text_records_match_awslambdaric(code_dir: Path) -> None:
    ours = [(level, msg) for level, _, msg in _records(_text_run(code_dir, "lambdakit")[1])]
    theirs = [(level, msg) for level, _, msg in _records(_text_run(code_dir, "awslambdaric")[1])]
    assert ours == theirs


def test_json_format_and_level(code_dir: Path) -> None:
    extra = ("--env", "AWS_LAMBDA_LOG_FORMAT=JSON", "--env", "AWS_LAMBDA_LOG_LEVEL=INFO")
    with serve_handler(code_dir, "app.logs", "lambdakit", *extra) as serve:
        _, headers, _ = invoke_json(serve, {"n": 2})
        assert serve.wait_for_output(r"^REPORT RequestId", timeout=10)
        output = serve.output()
    request_id = headers["x-amzn-requestid"]
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    by_message = {record["message"]: record for record in records}
    assert set(by_message) == {"root info é", "warning with extra", "caught"}  # no DEBUG
    assert all(record["requestId"] == request_id for record in records)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["timestamp"])
    assert by_message["root info é"]["level"] == "INFO"
    assert by_message["root info é"]["logger"] == "root"
    assert by_message["warning with extra"]["order_id"] == 42
    caught = by_message["caught"]
    assert (caught["level"], caught["errorType"], caught["errorMessage"]) == (
        "ERROR",
        "KeyError",
        "'missing'",
    )
    assert caught["stackTrace"] and caught["location"].endswith(
        ":logs:" + caught["location"].rsplit(":", 1)[1]
    )
    assert "printed line 2" in output


def test_json_error_report(code_dir: Path) -> None:
    with serve_handler(
        code_dir, "app.raising", "lambdakit", "--env", "AWS_LAMBDA_LOG_FORMAT=JSON"
    ) as serve:
        _, headers, _ = invoke_json(serve, {"n": 3})
        assert serve.wait_for_output(r"^REPORT RequestId", timeout=10)
        output = serve.output()
    reports = [json.loads(line) for line in output.splitlines() if '"errorType"' in line]
    assert len(reports) == 1
    assert reports[0]["level"] == "ERROR"
    assert reports[0]["errorType"] == "ValueError"
    assert reports[0]["requestId"] == headers["x-amzn-requestid"]


def test_print_is_unbuffered(code_dir: Path) -> None:
    # PYTHONUNBUFFERED is emptied so that only the runtime can make stdout unbuffered.
    extra = ("--env", "PYTHONUNBUFFERED=")
    with serve_handler(code_dir, "app.print_then_sleep", "lambdakit", *extra) as serve:
        result: list[object] = []
        caller = threading.Thread(target=lambda: result.append(invoke_json(serve, {})))
        caller.start()
        try:
            # The handler sleeps 1.5 s after printing: the line must show up before it returns.
            assert serve.wait_for_output(r"^before-sleep-marker$", timeout=1.2)
            assert not result
        finally:
            caller.join(30)
    assert result and result[0][2] == "slept"  # type: ignore[index]
