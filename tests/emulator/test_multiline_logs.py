"""A traceback in serve's log: lines in the text format; Lambda's ``\\r`` form in JSON, the tail."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest

from tests.serving import running_serve


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """\
            def inner():
                raise ValueError("deep boom")

            def handler(event, context):
                if event.get("print"):
                    print("one record\\rits second line")
                    return "printed"
                inner()
            """
        )
    )
    return tmp_path


def test_text_log_shows_each_frame_on_its_own_line(code: Path) -> None:
    with running_serve("--code-dir", str(code), "--function-name", "f", "app.handler") as serve:
        status, headers, _ = serve.invoke("f", headers={"X-Amz-Log-Type": "Tail"})
        assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
        assert serve.wait_for_output(r"^REPORT RequestId")
        output = serve.output()
    assert "\r" not in output
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("[ERROR] ValueError"))
    frames = lines[first + 1 : first + 6]
    assert frames[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in frames)
    assert any("in inner" in line for line in frames)
    assert any('raise ValueError("deep boom")' in line for line in frames)
    # The caller's log tail keeps Lambda's CloudWatch form: one record, lines joined with \r.
    tail = base64.b64decode(headers["x-amz-log-result"]).decode()
    assert "[ERROR] ValueError: deep boom\rTraceback (most recent call last):\r" in tail


def test_json_log_keeps_the_record_whole(code: Path) -> None:
    args = ("--code-dir", str(code), "--function-name", "f", "--log-format", "json")
    with running_serve(*args, "app.handler") as serve:
        serve.invoke("f", b'{"print": true}')
        assert serve.wait_for_output(r'"platform\.report"')
        records = [json.loads(line) for line in serve.output().splitlines() if line.startswith("{")]
    lines = [r["record"] for r in records if r["type"] == "function"]
    assert "one record\rits second line" in lines


def test_tagged_lines_of_several_functions_keep_their_tag(code: Path, tmp_path: Path) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(
        f'[functions.a]\ncode_dir = "{code}"\nruntime = "python"\nhandler = "app.handler"\n'
        f'[functions.b]\ncode_dir = "{code}"\nruntime = "python"\nhandler = "app.handler"\n'
    )
    with running_serve("--config", str(config)) as serve:
        serve.invoke("a")
        assert serve.wait_for_output(r"REPORT RequestId")
        lines = serve.output().splitlines()
    assert "[a]   Traceback (most recent call last):" in lines
