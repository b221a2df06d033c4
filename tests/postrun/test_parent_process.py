"""Parent-process mode under ``lambdakit serve``: the seed's check, the command's context,
modes, and the command's time limits."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from tests.postrun.support import (
    POST_RUN,
    RAW_RUNTIME,
    SEED_COMMAND,
    bash_post_run,
    env_flags,
    line_index,
    timed_invoke,
)
from tests.serving import process_alive, running_serve


def test_seed_check_response_at_once_command_after_next_invocation_after_it() -> None:
    flags = bash_post_run("--concurrency", "1", "--timeout", "10", *env_flags(COMMAND=SEED_COMMAND))
    with running_serve(*flags) as serve:
        _, headers, _ = timed_invoke(serve, {"warm": "up"})  # the cold start is not measured
        assert serve.wait_for_output(f"done {headers['x-amzn-requestid']}", timeout=10)
        time.sleep(0.2)  # let the held next reach serve

        elapsed, headers, body = timed_invoke(serve, {"n": 1})
        responded = time.monotonic()
        first = headers["x-amzn-requestid"]
        assert json.loads(body) == {"n": 1}
        assert elapsed < 0.3, f"the caller waited {elapsed:.2f}s"

        # The next invocation on this (only) environment waits for the command.
        elapsed2, headers2, _ = timed_invoke(serve, {"n": 2})
        second = headers2["x-amzn-requestid"]
        assert serve.wait_for_output(f"done {first}", timeout=10)
        waited = time.monotonic() - responded
        assert 1.7 < waited < 4.0, f"done+next after {waited:.2f}s"
        assert elapsed2 > 1.5
        assert serve.wait_for_output(rf"command for {first} exited with status 0", timeout=10)
        output = serve.output()
        assert line_index(output, f"^done {first}$") < line_index(
            output, f"START RequestId: {second}"
        )
        assert re.search(rf"command for {first} exited with status 0 after 2\.\d+ s", output)


def test_the_command_gets_the_invocation_in_its_environment(tmp_path: Path) -> None:
    command = (
        'out="$OUT/$POST_RUNNER_REQUEST_ID"; mkdir -p "$out"; '
        'env | grep "^POST_RUNNER_" > "$out/env"; '
        'cp "$POST_RUNNER_EVENT_FILE" "$out/event"; cp "$POST_RUNNER_RESULT_FILE" "$out/result"'
    )
    env = env_flags(COMMAND=command, OUT=str(tmp_path))
    flags = bash_post_run("--concurrency", "1", *env, handler="function.fail")
    with running_serve(*flags) as serve:
        _, headers, body = timed_invoke(serve, {"event": "one"})
        assert headers["x-amz-function-error"] == "Unhandled"
        request_id = headers["x-amzn-requestid"]
        timed_invoke(serve)  # starts only once the first command has finished
    out = tmp_path / request_id
    seen = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    assert seen["POST_RUNNER_REQUEST_ID"] == request_id
    assert seen["POST_RUNNER_OUTCOME"] == "error"
    assert seen["POST_RUNNER_FUNCTION_ARN"].endswith(":function:f")
    assert int(seen["POST_RUNNER_DEADLINE_MS"]) > time.time() * 1000 - 60_000
    assert json.loads((out / "event").read_text()) == {"event": "one"}
    assert (out / "result").read_bytes() == body  # the error body, as posted
    assert not Path(seen["POST_RUNNER_EVENT_FILE"]).exists()  # removed afterwards
    assert not Path(seen["POST_RUNNER_RESULT_FILE"]).parent.exists()


def test_response_outcome_and_result_file(tmp_path: Path) -> None:
    command = 'cp "$POST_RUNNER_RESULT_FILE" "$OUT/$POST_RUNNER_OUTCOME-$POST_RUNNER_REQUEST_ID"'
    flags = bash_post_run("--concurrency", "1", *env_flags(COMMAND=command, OUT=str(tmp_path)))
    with running_serve(*flags) as serve:
        _, headers, body = timed_invoke(serve, {"answer": 42})
        timed_invoke(serve)  # starts once the first command has finished
    assert (tmp_path / f"response-{headers['x-amzn-requestid']}").read_bytes() == body


def test_mode_selects_outcomes_and_tolerates_spaces_and_case(tmp_path: Path) -> None:
    command = 'touch "$OUT/$POST_RUNNER_OUTCOME-$POST_RUNNER_REQUEST_ID"'
    cases = {
        "AfterError": set(),
        " afterResponse , AfterError ": {"response"},
        "AfterResponse": {"response"},
    }
    for mode, expected in cases.items():
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        out.mkdir()
        flags = bash_post_run(
            "--concurrency", "1", *env_flags(COMMAND=command, MODE=mode, OUT=str(out))
        )
        with running_serve(*flags) as serve:
            _, headers, _ = timed_invoke(serve)
            timed_invoke(serve)  # after the first command (if any) has finished
            assert "ERROR" not in serve.errors()
        ran = {
            p.name.split("-", 1)[0] for p in out.iterdir() if headers["x-amzn-requestid"] in p.name
        }
        assert ran == expected, mode


def test_timeout_stops_the_command_and_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    command = f"echo started; sleep 30 & echo $! > {pid_file}; wait; echo never"
    flags = bash_post_run(
        "--concurrency", "1", "--timeout", "20", *env_flags(COMMAND=command, TIMEOUT="1")
    )
    with running_serve(*flags) as serve:
        _, headers, _ = timed_invoke(serve)
        elapsed, _, _ = timed_invoke(serve)
        request_id = headers["x-amzn-requestid"]
        assert 0.8 < elapsed < 5, elapsed
        # The log stream is written in batches: wait for the lines rather than race them.
        assert serve.wait_for_output(
            rf"command for {request_id} was killed by signal 15 after 1\.\d+ s, "
            r"stopped at its timeout of 1 s"
        ), serve.output()
        output = serve.output()
        assert "never" not in output
        assert not process_alive(int(pid_file.read_text()))
        assert "Task timed out" not in output


def test_the_command_never_runs_past_the_functions_deadline() -> None:
    flags = bash_post_run("--concurrency", "1", "--timeout", "3", *env_flags(COMMAND="sleep 30"))
    with running_serve(*flags) as serve:
        timed_invoke(serve)
        elapsed, _, _ = timed_invoke(serve)
        assert elapsed < 3.5
        assert serve.wait_for_output("stopped at its function's deadline"), serve.output()
        assert serve.wait_for_output("REPORT RequestId", count=2), serve.output()
        output = serve.output()
        assert "Task timed out" not in output  # the environment was not reset...
        assert sum("Init Duration" in line for line in output.splitlines()) == 1  # ...nor replaced


def test_a_failing_command_never_fails_the_invocation() -> None:
    flags = bash_post_run("--concurrency", "1", *env_flags(COMMAND="echo oops >&2; exit 3"))
    with running_serve(*flags) as serve:
        _, headers, body = timed_invoke(serve, {"ok": True})
        assert "x-amz-function-error" not in headers and json.loads(body) == {"ok": True}
        timed_invoke(serve)
        assert serve.wait_for_output("exited with status 3", timeout=5)
        assert "oops" in serve.output()


def test_the_runtime_is_not_blocked_while_the_command_runs() -> None:
    """The runtime's /response gets its 202 at once (the original held it for the command)."""
    flags = (
        "--code-dir", str(RAW_RUNTIME.parent), "--function-name", "f", "--concurrency", "1",
        "--timeout", "10", *env_flags(COMMAND=SEED_COMMAND),
        "--", *POST_RUN, "--", sys.executable, str(RAW_RUNTIME),
    )  # fmt: skip
    with running_serve(*flags) as serve:
        timed_invoke(serve)
        assert serve.wait_for_output(r"^accepted 202 ", timeout=5)
        output = serve.output()
        posted = float(re.findall(r"^posting ([0-9.]+)", output, re.M)[0])
        accepted = float(re.findall(r"^accepted 202 ([0-9.]+)", output, re.M)[0])
        assert accepted - posted < 0.3
        assert not re.search(r"^done ", output, re.M)  # the command is still sleeping
