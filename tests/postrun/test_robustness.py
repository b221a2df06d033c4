"""The post-runner against runtimes that die, misbehave, or are killed with it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.postrun.support import POST_RUN, RAW_RUNTIME, env_flags
from tests.serving import process_alive, running_serve


def _raw_post_run(*flags: str) -> tuple[str, ...]:
    return ("--function-name", "f", *flags, "--", *POST_RUN, "--", sys.executable,
            str(RAW_RUNTIME))  # fmt: skip


def test_a_runtime_exiting_right_after_its_response_gives_its_status_and_no_traceback() -> None:
    with running_serve(*_raw_post_run(*env_flags(COMMAND="sleep 0.2"))) as serve:
        for _ in range(5):  # the exit races the post-runner's hooks: try it a few times
            status, _, body = serve.invoke("f", json.dumps({"exit_after_post": 3}).encode())
            assert status == 200 and json.loads(body) == {"exit_after_post": 3}
            assert serve.wait_for_output(r"Runtime exited with error: exit status 3", count=1)
        time.sleep(0.5)
        output = serve.output() + serve.errors()
    assert "Traceback" not in output
    assert output.count("exit status 3") >= 1


def test_a_malformed_chunk_size_is_refused_not_looped_on() -> None:
    with running_serve(*_raw_post_run("--timeout", "3", *env_flags(COMMAND="true"))) as serve:
        started = time.monotonic()
        status, headers, _ = serve.invoke("f", json.dumps({"bad_chunk": True}).encode())
        assert serve.wait_for_output(r"^accepted 4\d\d ", timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 5  # answered, not stuck at 100% CPU
    assert status == 200 and headers.get("x-amz-function-error") == "Unhandled"


def test_the_runtime_inherits_lambdas_telemetry_log_fd(tmp_path: Path) -> None:
    log = tmp_path / "telemetry.log"
    probe = 'test -e /proc/self/fd/7 && echo fd7-open || echo fd7-closed; exec "$@"'
    with running_serve(
        "--function-name",
        "f",
        "--env",
        "AWS_LAMBDA_POST_RUNNER_COMMAND=true",
        "--",
        "bash",
        "-c",
        f'exec 7>>{log}; export _LAMBDA_TELEMETRY_LOG_FD=7; exec "$@"',
        "lambda",
        *POST_RUN,
        "--",
        "bash",
        "-c",
        probe,
        "probe",
        sys.executable,
        str(RAW_RUNTIME),
    ) as serve:
        assert serve.invoke("f")[0] == 200
        assert serve.wait_for_output(r"^fd7-")
    assert "fd7-open" in serve.output()


def test_the_command_dies_with_a_post_runner_killed_with_sigkill(tmp_path: Path) -> None:
    pid_file = tmp_path / "command.pid"
    command = f"echo $$ > {pid_file}; exec sleep 30"
    with running_serve(*_raw_post_run(*env_flags(COMMAND=command))) as serve:
        serve.invoke("f")
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        command_pid = int(pid_file.read_text())
        post_runner = _child_running(serve.process.pid, "post-run")
        os.kill(post_runner, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while process_alive(command_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(command_pid)


def _child_running(parent: int, text: str) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and text in args:
            return int(entry)
    raise AssertionError(f"no child of {parent} runs {text!r}")
