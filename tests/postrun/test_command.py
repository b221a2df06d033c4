"""The command's runs, bounded and always reaped; and the runtime exiting while one runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lambdakit.postrun.command import Command
from tests.postrun.support import POST_RUN
from tests.proxy.support import fake_runtime_api
from tests.serving import process_alive

SHELL = "/bin/sh"


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` is gone within ``timeout``: a signalled process takes a moment to die."""
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not process_alive(pid)


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + 5
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return int(path.read_text())


def test_a_command_that_ends_on_its_own_is_reaped_with_its_status() -> None:
    done = Command(SHELL, "exit 3", {"PATH": os.defpath}, limit=10).wait()
    assert (done.returncode, done.stopped) == (3, "")
    assert done.describe().startswith("exited with status 3 after 0.")


def test_the_limit_stops_the_whole_process_group_promptly(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = f"sleep 30 & echo $! > {pid_file}; wait"
    done = Command(SHELL, command, {"PATH": os.defpath}, 0.3, "at its timeout of 0.3 s").wait()
    assert done.returncode == -15 and 0.25 < done.duration < 1.0
    assert done.describe().endswith("stopped at its timeout of 0.3 s")
    assert gone(read_pid(pid_file))


def test_stop_from_another_thread_escalates_to_sigkill(tmp_path: Path) -> None:
    started = tmp_path / "started"
    command = Command(SHELL, f"trap '' TERM; echo $$ > {started}; sleep 30", {"PATH": os.defpath})
    read_pid(started)  # the trap is set
    results = []
    waiter = threading.Thread(target=lambda: results.append(command.wait()))
    waiter.start()
    begun = time.monotonic()
    command.stop("because the runtime exited", grace=0.2)
    waiter.join(5)
    assert results and results[0].returncode == -9
    assert time.monotonic() - begun < 2
    assert not process_alive(command.pid)


def test_a_runtime_exiting_while_the_command_runs_stops_it_and_its_status_is_ours(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    runtime = (
        "import os, socket\n"
        "host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)\n"
        "s = socket.create_connection((host, int(port)))\n"
        "s.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n')\n"
        "s.recv(65536)\n"
        "s.sendall(b'POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\\r\\n'\n"
        "          b'Host: a\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n"
        "s.recv(65536)\n"
        f"while not os.path.exists({str(pid_file)!r}): pass\n"
        "raise SystemExit(5)\n"
    )
    with fake_runtime_api() as api:
        env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_POST_RUNNER_COMMAND": f"sleep 30 & echo $! > {pid_file}; wait",
        }
        started = time.monotonic()
        finished = subprocess.run(
            [*POST_RUN, "--", sys.executable, "-c", runtime],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert finished.returncode == 5, finished.stderr
    assert time.monotonic() - started < 10
    assert "stopped because the runtime exited" in finished.stderr
    assert gone(read_pid(pid_file))
