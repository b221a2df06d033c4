"""Execution environments: timeouts, crashes, init errors, scale-out, idle reaping, shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.serving import REPO, bash_function, frozen, process_alive, running_serve


def _pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []


def test_timeout_kills_the_environment_and_the_next_invocation_gets_a_fresh_one(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    with running_serve(
        *bash_function(
            "--function-name",
            "slow",
            "--timeout",
            "1",
            "--env",
            f"PID_FILE={pid_file}",
            handler="function.sleep_long",
        )
    ) as serve:
        started = time.monotonic()
        status, headers, body = serve.invoke("slow")
        elapsed = time.monotonic() - started
        first_pid = _pids(pid_file)[0]
        # The whole process group is gone, the runtime and its `sleep 30` child alike.
        deadline = time.monotonic() + 5
        while process_alive(first_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(first_pid)
        status2, _, _ = serve.invoke("slow")
        assert serve.wait_for_output(r"^REPORT .*Init Duration", count=2)
        pids = _pids(pid_file)
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Sandbox.Timedout"
    request_id = headers["x-amzn-requestid"]
    assert error["errorMessage"] == (
        f"RequestId: {request_id} Error: Task timed out after 1.00 seconds"
    )
    assert 0.9 < elapsed < 5
    assert status2 == 200
    assert len(pids) == 2 and pids[0] != pids[1]  # a fresh environment
    assert re.search(rf"{request_id} Task timed out after 1\.00 seconds", serve.output())
    assert re.search(rf"REPORT RequestId: {request_id}.*Status: timeout", serve.output())


def test_a_crash_is_runtime_exit_error_and_the_environment_is_replaced(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    with running_serve(
        *bash_function(
            "--function-name", "crashy", "--env", f"PID_FILE={pid_file}", handler="function.crash"
        )
    ) as serve:
        status, headers, body = serve.invoke("crashy")
        again = serve.invoke("crashy")
        pids = _pids(pid_file)
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    request_id = headers["x-amzn-requestid"]
    assert json.loads(body) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 42",
    }
    assert json.loads(again[2])["errorType"] == "Runtime.ExitError"
    assert len(pids) == 2 and pids[0] != pids[1]
    assert "crashing now" in serve.output()


def test_init_error_goes_to_the_waiting_invocation_and_init_is_retried() -> None:
    with running_serve(
        *bash_function("--function-name", "broken", "--env", "INIT_FAIL=1")
    ) as serve:
        status, headers, body = serve.invoke("broken")
        again = serve.invoke("broken")
        assert serve.wait_for_output(r"INIT_REPORT .*Status: error", count=2)
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    assert json.loads(body) == {
        "errorMessage": "bad configuration",
        "errorType": "Runtime.ConfigInvalid",
    }
    assert json.loads(again[2])["errorType"] == "Runtime.ConfigInvalid"


def test_exit_before_the_first_next_is_runtime_exit_error() -> None:
    with running_serve(
        *bash_function("--function-name", "quitter", "--env", "INIT_EXIT=3")
    ) as serve:
        status, headers, body = serve.invoke("quitter")
    error = json.loads(body)
    assert (status, headers["x-amz-function-error"]) == (200, "Unhandled")
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Error: Runtime exited with error: exit status 3")
    assert "exiting during init with status 3" in serve.output()


def test_a_runtime_that_cannot_start_is_reported_not_hung(tmp_path: Path) -> None:
    script = tmp_path / "bootstrap"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    with running_serve("--function-name", "nostart", "--bootstrap", str(script)) as serve:
        status, headers, body = serve.invoke("nostart")
    assert status == 200
    assert headers["x-amz-function-error"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Runtime.InvalidEntrypoint"


def test_eight_parallel_invocations_with_concurrency_8_finish_together() -> None:
    with running_serve(
        *bash_function(
            "--function-name", "half", "--concurrency", "8", handler="function.sleep_half"
        )
    ) as serve:
        ends: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def call() -> None:
            status, _, _ = serve.invoke("half")
            with lock:
                statuses.append(status)
                ends.append(time.monotonic())

        started = time.monotonic()
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert serve.wait_for_output(r"^REPORT", count=8)
        environments = len(re.findall(r"Init Duration", serve.output()))
    assert statuses == [200] * 8
    # One at a time would take 8 x 0.5 s = 4 s; together they take about 0.5 s.
    assert max(ends) - started < 2.5
    assert max(ends) - min(ends) < 1.0
    assert environments == 8


def test_idle_environments_are_stopped_after_the_idle_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    with running_serve(
        *bash_function(
            "--function-name", "idle", "--idle-timeout", "0.5", "--env", f"PID_FILE={pid_file}"
        )
    ) as serve:
        assert serve.invoke("idle")[0] == 200
        first = _pids(pid_file)[0]
        deadline = time.monotonic() + 10
        while process_alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(first)
        assert serve.invoke("idle")[0] == 200
        assert serve.wait_for_output(r"^REPORT .*Init Duration", count=2)


def test_sigterm_finishes_in_flight_work_and_leaves_no_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    with running_serve(
        *bash_function(
            "--function-name",
            "half",
            "--concurrency",
            "3",
            "--env",
            f"PID_FILE={pid_file}",
            handler="function.sleep_half",
        )
    ) as serve:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(serve.invoke("half")[0]))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        assert serve.wait_for_output(r"^START", count=3)
        code = serve.stop(signal.SIGTERM)
        for thread in threads:
            thread.join(10)
        pids = _pids(pid_file)
    assert code == 0
    assert results == [200, 200, 200]  # in-flight invocations finished
    assert len(pids) == 3
    leftovers = [pid for pid in pids if process_alive(pid) or _in_group(pid)]
    assert leftovers == []


def _in_group(pgid: int) -> bool:
    """True if any live process still belongs to process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


_ASKS_NEXT_ON_SIGTERM = r"""#!/usr/bin/env bash
# Answers every event with "ok"; on SIGTERM asks for the next event once more and writes the
# HTTP status it got (000: no answer within a second) to $MARKER, then exits.
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
head=$(mktemp)
on_term() {
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "$api/invocation/next")
  echo "$code" >"$MARKER"
  rm -f "$head"
  exit 0
}
trap on_term TERM
while :; do
  curl -sS -D "$head" -o /dev/null "$api/invocation/next" &
  wait $!
  id=$(sed -n 's/^lambda-runtime-aws-request-id: *\([^[:space:]]*\).*/\1/ip' "$head")
  curl -sS -o /dev/null -d '"ok"' "$api/invocation/$id/response"
done
"""


def test_a_runtime_asking_for_next_while_shut_down_is_held_not_told_to_exit(
    tmp_path: Path,
) -> None:
    # A runtime told "exit promptly" exits before its SIGTERM arrives, skipping its shutdown
    # hooks; Lambda stops it instead, so a next during Shutdown is never answered.
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    bootstrap = code_dir / "bootstrap"
    bootstrap.write_text(_ASKS_NEXT_ON_SIGTERM)
    bootstrap.chmod(0o755)
    marker = tmp_path / "next-status"
    args = ("--code-dir", str(code_dir), "--function-name", "f", "--env", f"MARKER={marker}")
    with running_serve(*args) as serve:
        status, _, body = serve.invoke("f")
        assert (status, body) == (200, b'"ok"')
        assert serve.stop(signal.SIGTERM) == 0
    assert marker.read_text().strip() == "000"


def test_a_second_next_does_not_cancel_the_runtimes_held_one() -> None:
    # The runtime keeps its first GET next and asks again on another connection that gives up
    # after 0.2 s: its first connection must still get the event (no Runtime.ExitError).
    code_dir = REPO / "tests" / "fixtures" / "runtimes" / "asks_twice"
    # --no-freeze: the second next comes while the environment is idle, which a freeze stops.
    args = ("--code-dir", str(code_dir), "--function-name", "twice", "--no-freeze")
    with running_serve(*args) as serve:
        time.sleep(1.0)  # both next calls are in, the second one gone
        pids = []
        for _ in range(3):
            status, _, body = serve.invoke("twice")
            assert status == 200 and b"errorType" not in body, body
            pids.append(json.loads(body)["pid"])
            time.sleep(0.6)
    assert len(set(pids)) == 1, pids  # one runtime throughout: its connection was never cut


_DETACHES = """\
import os
import subprocess
import sys
import time

TICKER = (
    "import sys, time\\n"
    "while True:\\n    open(sys.argv[1], 'a').write('.')\\n    time.sleep(0.02)\\n"
)
child = None


def handler(event, context):
    global child
    if child is None:  # a process of its own session, outside the runtime's process group
        command = [sys.executable, "-c", TICKER, event["ticks"]]
        child = subprocess.Popen(command, start_new_session=True)
    time.sleep(event.get("sleep", 0))
    return {"runtime": os.getpid(), "child": child.pid}
"""


def test_a_process_that_left_its_group_is_frozen_with_the_environment(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(_DETACHES)
    ticks = tmp_path / "ticks"
    args = ("--code-dir", str(tmp_path), "--function-name", "detaches", "app.handler")
    with running_serve(*args) as serve:
        first = {"ticks": str(ticks), "sleep": 0.5}  # long enough for the child to tick
        status, _, body = serve.invoke("detaches", json.dumps(first).encode())
        assert status == 200, body
        if "no cgroup for environments" in serve.errors():  # SIGSTOP misses a detached process
            pytest.skip("cgroup v2 is not usable here: serve freezes process groups")
        pids = json.loads(body)
        time.sleep(0.5)  # frozen 20 ms after the invocation
        assert frozen(pids["runtime"]) and frozen(pids["child"])
        before = ticks.read_text()
        time.sleep(0.5)
        assert ticks.read_text() == before  # the detached process did not run meanwhile
        event = json.dumps({"ticks": str(ticks), "sleep": 0.5}).encode()
        assert serve.invoke("detaches", event)[0] == 200  # thawed while it runs
        assert len(ticks.read_text()) > len(before)
