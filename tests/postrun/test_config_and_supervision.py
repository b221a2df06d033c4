"""Bad configuration becomes an init error; the runtime child is supervised."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.postrun.support import POST_RUN, bash_post_run, env_flags
from tests.serving import running_serve

PY = sys.executable


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "AWS_LAMBDA_POST_RUNNER_COMMAND is not set"),
        ({"COMMAND": "  "}, "AWS_LAMBDA_POST_RUNNER_COMMAND is empty"),
        ({"COMMAND": "true", "MODE": "AfterResponse,Sometimes"}, "unknown mode 'Sometimes'"),
        ({"COMMAND": "true", "TIMEOUT": "soon"}, "AWS_LAMBDA_POST_RUNNER_TIMEOUT: 'soon'"),
        ({"COMMAND": "true", "SHELL": "/no/such/shell"}, "AWS_LAMBDA_POST_RUNNER_SHELL"),
        ({"COMMAND": "true", "LOG_LEVEL": "chatty"}, "AWS_LAMBDA_POST_RUNNER_LOG_LEVEL"),
    ],
)
def test_bad_configuration_is_an_init_error_naming_the_variable(
    variables: dict[str, str], named: str
) -> None:
    with running_serve(*bash_post_run(*env_flags(**variables))) as serve:
        started = time.monotonic()
        status, headers, body = serve.invoke("f")
        assert time.monotonic() - started < 10
        assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "PostRunner.ConfigError"
        assert named in error["errorMessage"]
        assert serve.wait_for_output(re.escape(named), timeout=5)  # in the function's log


def run_post_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", **(env or {})}
    environ.setdefault("AWS_LAMBDA_POST_RUNNER_COMMAND", "true")
    return subprocess.run(
        [*POST_RUN, *args], env=environ, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_runtime_exit_status_becomes_ours_and_the_port_is_a_free_one() -> None:
    code = "import os, sys; print(os.environ['AWS_LAMBDA_RUNTIME_API']); sys.exit(7)"
    first = run_post_run("--", PY, "-c", code)
    assert first.returncode == 7
    host, port = first.stdout.strip().rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) not in (0, 3000, 9)
    killed = run_post_run(PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == 128 + signal.SIGKILL


def test_sigterm_is_forwarded_to_the_runtime() -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(signum, frame):\n"
        "    print('runtime got', signal.Signals(signum).name, flush=True); sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}
    env["AWS_LAMBDA_POST_RUNNER_COMMAND"] = "true"
    process = subprocess.Popen(
        [*POST_RUN, "--", PY, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 3
        assert process.stdout.read().strip() == "runtime got SIGTERM"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_taken_port_and_a_missing_runtime_are_reported_not_crashes() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_post_run("--port", str(port), "--", PY, "-c", "pass")
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (AWS_LAMBDA_RUNTIME_PROXY_PORT" in busy.stderr
    assert "Traceback" not in busy.stderr
    missing = run_post_run("--", "/no/such/runtime")
    assert missing.returncode == 127
    assert "cannot start the runtime '/no/such/runtime'" in missing.stderr
    usage = run_post_run("--no-such-flag", "x")
    assert usage.returncode == 2 and "--no-such-flag" in usage.stderr


def test_a_crashing_runtime_is_seen_by_serve_with_its_status() -> None:
    with running_serve(*bash_post_run(*env_flags(COMMAND="true"), handler="function.crash")) as s:
        _, headers, body = s.invoke("f")
        assert headers.get("x-amz-function-error") == "Unhandled"
        assert b"Runtime.ExitError" in body and b"exit status 42" in body


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", "DEBUG"), ("aws_lambda_post_runner=debug", "DEBUG"), ("info,hyper=warn", "INFO")],
)
def test_env_logger_directives_are_accepted_as_the_original_does(value: str, level: str) -> None:
    import logging

    from lambdakit.postrun.config import _log_level

    assert _log_level(value, "AWS_LAMBDA_POST_RUNNER_LOG_LEVEL") == getattr(logging, level)
