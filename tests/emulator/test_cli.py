"""`lambdakit serve`'s command line: clear errors, configuration files, log formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import BASH_RUNTIME, REPO, bash_function, running_serve


def _serve(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdakit", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--timeout", "abc", *bash_function()],
            "--timeout: expected a number, got 'abc'",
        ),
        (["--timeout", "901", *bash_function()], "out of range"),
        (["--memory", "64", *bash_function()], "--memory: 64 is out of range"),
        (["--concurrency", "0", *bash_function()], "--concurrency: 0 is out of range"),
        (["--function-name", "bad name", *bash_function()], "not a valid function name"),
        (["--env", "NOEQUALS", *bash_function()], "--env: expected KEY=VALUE"),
        (["--code-dir", "/nonexistent"], "--code-dir: '/nonexistent' is not a directory"),
        (["--code-dir", "/tmp"], "no 'bootstrap' in"),
        (["--bootstrap", "/nonexistent/bootstrap"], "does not exist"),
        (["--port", "99999", *bash_function()], "--port: 99999 is out of range"),
        (["--log-format", "xml", *bash_function()], "--log-format: invalid choice"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--config", "/nonexistent.toml"], "--config: cannot read"),
        (["--", "/no/such/command"], "command '/no/such/command' not found"),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_problem(args: list[str], message: str) -> None:
    result = _serve(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lambdakit serve: error: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[functions.a]\ncode_dir = 'X'\ntimeout = 'soon'\n",
            "lambdakit.toml [functions.a] timeout: expected a number",
        ),
        (
            "[functions.a]\ncode_dir = 'X'\ncolour = 'blue'\n",
            "lambdakit.toml [functions.a] colour: unknown key",
        ),
        ("[service]\nport = 1\n", "declares no functions"),
        ("[functions.a\n", "is not valid TOML"),
        ("[functions.a]\ncode_dir = 'X'\nruntime = 'java'\n", "[functions.a] runtime: 'java'"),
        ("[functions.a]\ncode_dir = 'X'\n[services]\n", "unknown section 'services'"),
    ],
)
def test_bad_config_files_exit_2_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(toml.replace("'X'", repr(str(BASH_RUNTIME))))
    result = _serve("--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr.strip()
    assert len(result.stderr.strip().splitlines()) == 1


def test_function_flags_cannot_be_combined_with_a_config_file() -> None:
    result = _serve("--config", "examples/lambdakit.toml", "--timeout", "5")
    assert result.returncode == 2
    assert "--timeout: cannot be combined with --config" in result.stderr


def test_help_describes_the_runtime_selection() -> None:
    result = _serve("--help")
    assert result.returncode == 0
    for text in ("--bootstrap PATH", "-- COMMAND", "HANDLER", "--concurrency", "--config"):
        assert text in result.stdout


def test_top_level_help_and_unknown_commands() -> None:
    top = subprocess.run(
        [sys.executable, "-m", "lambdakit", "--help"], capture_output=True, text=True, timeout=30
    )
    assert top.returncode == 0 and "serve" in top.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lambdakit", "dance"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "invalid choice: 'dance'" in bad.stderr
    alone = subprocess.run(
        [sys.executable, "-m", "lambdakit"], capture_output=True, text=True, timeout=30
    )
    assert alone.returncode == 0 and "serve" in alone.stdout and "top" in alone.stdout


def test_a_port_in_use_is_one_line_with_a_hint() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(*bash_function(), "--port", str(port))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another port, or 0 for a free one" in result.stderr


def test_environment_variables_configure_a_single_function() -> None:
    env = {"AWS_LAMBDA_FUNCTION_NAME": "fromenv", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}
    with running_serve(*bash_function(handler="function.context"), env=env) as serve:
        status, _, body = serve.invoke("fromenv")
    assert status == 200
    assert json.loads(body)["env"]["memory"] == "512"


def test_a_config_file_declares_several_functions_routed_by_name(tmp_path: Path) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(
        f"""
[service]
log_format = "text"

[functions.echo]
code_dir = "{BASH_RUNTIME}"
handler = "function.echo_event"

[functions.ctx]
code_dir = "{BASH_RUNTIME}"
handler = "function.context"
memory = 1024
env = {{ CUSTOM_VAR = "from-toml" }}
"""
    )
    with running_serve("--config", str(config)) as serve:
        echo = serve.invoke("echo", b'{"n": 1}')
        ctx = serve.invoke("ctx", b"{}")
        assert serve.wait_for_output(r"^\[ctx\] REPORT")
    assert json.loads(echo[2]) == {"n": 1}
    context = json.loads(ctx[2])["env"]
    assert (context["name"], context["memory"], context["custom"]) == ("ctx", "1024", "from-toml")
    assert "[echo] got an event" in serve.output()


def test_an_env_file_reaches_the_function(tmp_path: Path) -> None:
    env_file = tmp_path / "vars.env"
    env_file.write_text("# comment\nexport CUSTOM_VAR='quoted value'\n")
    with running_serve(
        *bash_function("--env-file", str(env_file), handler="function.context")
    ) as serve:
        _, _, body = serve.invoke("function")
    assert json.loads(body)["env"]["custom"] == "quoted value"


def test_json_log_format_writes_platform_records() -> None:
    with running_serve(*bash_function("--log-format", "json")) as serve:
        _, headers, _ = serve.invoke("function")
        request_id = headers["x-amzn-requestid"]
        assert serve.wait_for_output(r'"platform.report"')
    records = [json.loads(line) for line in serve.output().splitlines() if line.startswith("{")]
    kinds = [r["type"] for r in records]
    assert kinds == ["platform.start", "function", "platform.report"]
    assert records[0]["record"] == {"requestId": request_id, "version": "$LATEST"}
    assert records[1]["record"] == "got an event"
    metrics = records[2]["record"]["metrics"]
    assert set(metrics) == {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
        "initDurationMs",
    }
    assert records[2]["record"]["status"] == "success"


def test_port_in_use_is_a_clear_error() -> None:
    with running_serve(*bash_function()) as serve:
        result = _serve("--port", str(serve.port), *bash_function())
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{serve.port}" in result.stderr
