"""``lambdakit invoke``: against a running serve and one-shot, through the real command line."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.serving import BASH_RUNTIME, REPO, bash_function, process_alive, running_serve

STREAMERS = REPO / "tests" / "streaming" / "functions"


def _lambdakit(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 90,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lambdakit", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def raising(tmp_path: Path) -> Path:
    """A Python function that logs a caught traceback, then raises."""
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """\
            def inner():
                raise ValueError("boom")

            def handler(event, context):
                if event.get("ok"):
                    return {"ok": True, "got": event}
                inner()
            """
        )
    )
    return tmp_path


def test_invoke_against_a_running_serve_prints_the_payload() -> None:
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        result = _lambdakit(
            "invoke", "echo", "--payload", '{"hello": "world"}', "--endpoint", serve.url
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"hello": "world"}
        # The endpoint from the environment, the payload from stdin.
        result = _lambdakit(
            "invoke", "echo", "--event", "-", stdin=b'{"from": "stdin"}',
            env={"LAMBDAKIT_ENDPOINT": serve.url},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"from": "stdin"}


def test_invoke_reads_the_event_from_a_file(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"from": "file"}')
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        result = _lambdakit("invoke", "echo", "--event", str(event), "--endpoint", serve.url)
        assert json.loads(result.stdout) == {"from": "file"}
        result = _lambdakit("invoke", "echo", "--endpoint", serve.url)
        assert json.loads(result.stdout) == {}  # no payload: {}


def test_function_error_exits_1_with_the_error_on_stdout_and_a_summary() -> None:
    with running_serve(*bash_function("--function-name", "f", handler="function.fail")) as serve:
        result = _lambdakit("invoke", "f", "--endpoint", serve.url)
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "HandlerFailed"
    assert b"function error (Unhandled): HandlerFailed" in result.stderr


def test_service_errors_exit_3_naming_the_error() -> None:
    with running_serve(*bash_function("--function-name", "f")) as serve:
        result = _lambdakit("invoke", "nope", "--endpoint", serve.url)
    assert result.returncode == 3
    assert b"ResourceNotFoundException" in result.stderr
    assert result.stdout == b""


def test_connection_refused_is_one_clear_line_and_exit_4() -> None:
    port = _free_port()
    result = _lambdakit("invoke", "f", "--endpoint", f"http://127.0.0.1:{port}")
    assert result.returncode == 4
    stderr = result.stderr.decode()
    assert "connection refused" in stderr
    assert "lambdakit serve" in stderr and "--config" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke"], "NAME"),
        (["invoke", "f", "--payload", "not json"], "--payload: the event is not JSON"),
        (["invoke", "f", "--event", "/nonexistent.json"], "--event: cannot read"),
        (["invoke", "f", "--payload", "{}", "--event", "x"], "not allowed with"),
        (["invoke", "f", "--invocation-type", "Sync"], "--invocation-type"),
        (["invoke", "f", "--stream", "--invocation-type", "Event"], "--stream"),
        (["invoke", "f", "--endpoint", "ftp://x"], "--endpoint: expected http://HOST[:PORT]"),
        (["invoke", "f", "--code-dir", "/nonexistent"], "--code-dir: '/nonexistent'"),
        (["invoke", "f", "--code-dir", str(BASH_RUNTIME), "--port", "1"], "--port: chosen by"),
        (
            ["invoke", "f", "--code-dir", str(BASH_RUNTIME), "--invocation-type", "Event"],
            "needs a running serve",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = _lambdakit(*args)
    assert result.returncode == 2, result.stderr
    stderr = result.stderr.decode()
    assert message in stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1


def test_log_tail_is_decoded_to_stderr(raising: Path) -> None:
    with running_serve("--code-dir", str(raising), "--function-name", "f", "app.handler") as s:
        result = _lambdakit("invoke", "f", "--log-tail", "--endpoint", s.url)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "START RequestId:" in stderr and "REPORT RequestId:" in stderr
    # The tail keeps Lambda's form on the wire; the command shows it as lines.
    assert "\r" not in stderr
    assert "\n  Traceback (most recent call last):" in stderr
    assert json.loads(result.stdout)["errorType"] == "ValueError"


def test_invocation_types_event_and_dry_run(tmp_path: Path) -> None:
    record = tmp_path / "records"
    flags = bash_function(
        "--function-name", "f", "--env", f"RECORD_FILE={record}", handler="function.record"
    )
    with running_serve(*flags) as serve:
        dry = _lambdakit("invoke", "f", "--invocation-type", "DryRun", "--endpoint", serve.url)
        assert dry.returncode == 0 and dry.stdout == b""
        assert b"DryRun" in dry.stderr
        event = _lambdakit(
            "invoke", "f", "--invocation-type", "Event", "--payload", '{"n": 1}',
            "--endpoint", serve.url,
        )  # fmt: skip
        assert event.returncode == 0, event.stderr
        assert b"accepted (Event)" in event.stderr
        deadline = time.monotonic() + 30
        while not (record.exists() and record.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert '"n": 1' in record.read_text() or '"n":1' in record.read_text()


def test_stream_prints_chunks_as_they_arrive(tmp_path: Path) -> None:
    code = tmp_path / "code"
    shutil.copytree(STREAMERS, code, ignore=shutil.ignore_patterns("__pycache__"))
    release = tmp_path / "release"
    args = ["--code-dir", str(code), "--function-name", "s", "--timeout", "60"]
    with running_serve(*args, "streamers.generator") as serve:
        process = subprocess.Popen(
            [sys.executable, "-m", "lambdakit", "invoke", "s", "--stream", "--endpoint", serve.url,
             "--payload", json.dumps({"release": str(release)})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            # The first chunk is out while the handler still waits for the release file.
            assert os.read(process.stdout.fileno(), 100) == b"first"
            release.write_text("go")
            rest, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, stderr
    assert rest == "second é!".encode()


def test_stream_reports_a_function_error_midway(tmp_path: Path) -> None:
    code = tmp_path / "code"
    shutil.copytree(STREAMERS, code, ignore=shutil.ignore_patterns("__pycache__"))
    args = ["--code-dir", str(code), "--function-name", "s"]
    with running_serve(*args, "streamers.generator_fails_midway") as serve:
        result = _lambdakit("invoke", "s", "--stream", "--endpoint", serve.url)
    assert result.returncode == 1
    assert result.stdout == b"partial"
    assert b"function error" in result.stderr and b"mid-stream boom" in result.stderr


def test_one_shot_with_serve_flags_runs_the_function_and_stops_it(raising: Path) -> None:
    result = _lambdakit(
        "invoke", "f", "--code-dir", str(raising), "app.handler", "--payload", '{"ok": 1}'
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "got": {"ok": 1}}
    stderr = result.stderr.decode()
    # The function's log goes to stderr, complete (REPORT written before serve is stopped).
    assert "START RequestId:" in stderr and "REPORT RequestId:" in stderr
    assert "listening on" not in stderr
    assert "Status: failure" not in stderr


def test_one_shot_flags_before_name_and_a_command(tmp_path: Path) -> None:
    # serve's flags may come first; NAME is the first argument that is no flag's value.
    result = _lambdakit(
        "invoke", "--code-dir", str(BASH_RUNTIME), "--handler", "function.echo_event", "echo",
        "--payload", "[1, 2]", "--", str(BASH_RUNTIME / "bootstrap"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1, 2]
    # serve is stopped only once the runtime asked for its next event: the phase is complete.
    assert b"REPORT RequestId:" in result.stderr and b"Status: failure" not in result.stderr


def test_one_shot_with_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "lambdakit.toml"
    config.write_text(
        f'[functions.echo]\ncode_dir = "{BASH_RUNTIME}"\nhandler = "function.echo_event"\n'
        f'[functions.other]\ncode_dir = "{BASH_RUNTIME}"\nhandler = "function.fail"\n'
    )
    result = _lambdakit("invoke", "echo", "--config", str(config), "--payload", '{"c": 1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"c": 1}
    missing = _lambdakit("invoke", "nope", "--config", str(config))
    assert missing.returncode == 2
    assert b"no function named 'nope'" in missing.stderr and b"echo, other" in missing.stderr


def test_one_shot_beside_a_serve_that_holds_the_functions_url_port(tmp_path: Path) -> None:
    config = tmp_path / "lambdakit.toml"
    with socket.socket() as taken:  # the port a running serve's Function URL would hold
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(
            f'[functions.echo]\ncode_dir = "{BASH_RUNTIME}"\nhandler = "function.echo_event"\n'
            f"url_port = {port}\n"
        )
        result = _lambdakit("invoke", "echo", "--config", str(config), "--payload", '{"u": 1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"u": 1}


def test_one_shot_with_a_sam_template(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Echo:\n"
        "    Type: AWS::Serverless::Function\n"
        f"    Properties: {{CodeUri: {BASH_RUNTIME}, Handler: function.echo_event,"
        " Runtime: provided.al2023}\n"
    )
    result = _lambdakit("invoke", "Echo", "--template", str(template), "--payload", '{"t": 1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"t": 1}


def test_one_shot_function_error_exits_1(raising: Path) -> None:
    result = _lambdakit("invoke", "f", "--code-dir", str(raising), "app.handler")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorMessage"] == "boom"


def test_one_shot_leaves_no_process_behind(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    (tmp_path / "app.py").write_text(
        "import os\n"
        f"def handler(event, context):\n"
        f"    open({str(pids)!r}, 'a').write(f'{{os.getpid()}} {{os.getppid()}}\\n')\n"
        "    return 'ok'\n"
    )
    result = _lambdakit("invoke", "f", "--code-dir", str(tmp_path), "app.handler")
    assert result.returncode == 0, result.stderr
    runtime, serve = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 10
    while (process_alive(runtime) or process_alive(serve)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(runtime) and not process_alive(serve)


def test_event_piped_into_invoke_against_a_real_serve() -> None:
    with running_serve(*bash_function("--function-name", "orders")) as serve:
        sample = _lambdakit("event", "sqs", "--body", "order 7")
        assert sample.returncode == 0, sample.stderr
        shell = (
            f"{sys.executable} -m lambdakit event sqs --body 'order 7' | "
            f"{sys.executable} -m lambdakit invoke orders --event - --endpoint {serve.url}"
        )
        piped = subprocess.run(
            ["bash", "-o", "pipefail", "-c", shell], capture_output=True, timeout=60, cwd=REPO
        )
    assert piped.returncode == 0, piped.stderr
    record = json.loads(piped.stdout)["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["body"] == "order 7"


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def test_ctrl_c_stops_a_one_shot_serve_at_once_and_reaps_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "lambdakit", "invoke", "f", "--timeout", "60",
         *bash_function(handler="function.sleep_long")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = b""
        while b"START RequestId" not in seen:  # the invocation runs (its log is copied)
            line = process.stderr.readline()
            assert line, seen
            seen += line
        (serve,) = _children(process.pid)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(30)
        except subprocess.TimeoutExpired:  # say what it was doing (seen once under load)
            try:
                family = [serve, *_children(serve)]
            except OSError:
                family = [serve]
            alive = {pid: process_alive(pid) for pid in family}
            process.kill()
            rest = process.stderr.read().decode(errors="replace")
            message = f"no exit 30 s after SIGINT; alive: {alive}; stderr: {rest}"
            raise AssertionError(message) from None
        assert status == 130
        assert time.monotonic() - started < 10  # not serve's 10 s grace for the invocation
        assert not process_alive(serve)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _documented(path: Path, prefix: str) -> list[list[str]]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith(prefix)]


def test_the_documented_one_shot_examples_run() -> None:
    examples = _documented(REPO / "docs" / "invoke.md", "lambdakit invoke ")
    examples += _documented(REPO / "README.md", "lambdakit invoke hello --code-dir")
    one_shot = [e for e in examples if "--config" in e or "--code-dir" in e]
    assert len(one_shot) >= 4
    for example in one_shot:
        result = _lambdakit(*example[1:])
        assert result.returncode == 0, (example, result.stderr)
        json.loads(result.stdout)  # the response, alone on stdout
