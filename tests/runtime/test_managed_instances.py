"""Lambda Managed Instances mode (``AWS_LAMBDA_MAX_CONCURRENCY``), under AWS's RIE in LMI mode.

Each test runs the real runtime under the real RIE (see ``lmi_support`` for how, without
Docker), sends concurrent invocations with request ids of its own, and reads what came back and
what the runtime logged.  awslambdaric runs side by side under the same RIE and handler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.lmi_support import LmiRie, running_lmi_rie, unavailable_reason
from tests.runtime.support import FUNCTIONS

N = 8
SLEEP_S = 0.5
#: Generous: N sequential invocations would take N x SLEEP_S = 4 s.
OVERLAP_LIMIT_S = N * SLEEP_S / 2

needs_rie = pytest.mark.skipif(
    (reason := unavailable_reason()) is not None, reason=reason or "RIE LMI mode unavailable"
)

#: id -> (runtime, handler, extra environment)
VARIANTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "lambdakit-async": ("lambdakit", "lmi.asleepy", {}),
    "lambdakit-processes": ("lambdakit", "lmi.sleepy", {}),
    "lambdakit-threads": ("lambdakit", "lmi.sleepy", {"LAMBDAKIT_WORKERS": "threads"}),
    "awslambdaric": ("awslambdaric", "lmi.sleepy", {}),
}
BASE_ENV = {"AWS_LAMBDA_LOG_LEVEL": "INFO", "AWS_LAMBDA_FUNCTION_TIMEOUT": "10"}


def _round(rie: LmiRie, pool: ThreadPoolExecutor, tag: str, sleep: float) -> list[Any]:
    """N concurrent invocations, request ids ``<tag>-<i>``; their answers, in order."""

    def one(i: int) -> Any:
        answer = rie.invoke_when_idle({"i": i, "sleep": sleep}, f"{tag}-{i}")
        assert answer.status == 200, (answer, rie.output())
        return answer.json()

    return list(pool.map(one, range(N)))


def _warm(rie: LmiRie, pool: ThreadPoolExecutor) -> None:
    """One round that reaches every loop, then a moment for all of them to be back in next."""
    _round(rie, pool, "warm", 0)
    time.sleep(0.3)


def _handler_lines(rie: LmiRie, expected: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The handler's JSON log lines, once the ``expected`` (message, request id) pairs are
    among them (RIE relays the runtime's output on its own schedule, not necessarily before it
    answers the caller; the warm-up round logs the same messages under other ids)."""
    deadline = time.monotonic() + 10
    while True:
        records = [r for r in rie.json_lines() if r.get("logger") == "lmi"]
        seen = {(r["message"], r.get("requestId")) for r in records}
        if expected <= seen or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


@needs_rie
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_concurrent_invocations_overlap_in_one_environment(tmp_path: Path, variant: str) -> None:
    runtime, handler, env = VARIANTS[variant]
    with (
        running_lmi_rie(tmp_path, runtime, handler, str(N), {**BASE_ENV, **env}) as rie,
        ThreadPoolExecutor(N) as pool,
    ):
        _warm(rie, pool)
        started = time.monotonic()
        answers = _round(rie, pool, "req", SLEEP_S)
        wall = time.monotonic() - started
        records = _handler_lines(rie, {(f"end {i}", f"req-{i}") for i in range(N)})
        inits = rie.output().count("LMI-INIT")

    assert wall < OVERLAP_LIMIT_S, f"{N} x {SLEEP_S} s took {wall:.2f} s"
    # Each caller got its own answer, from an invocation that saw its request id.
    assert [a["i"] for a in answers] == list(range(N))
    assert [a["request_id"] for a in answers] == [f"req-{i}" for i in range(N)]
    assert all(a["remaining_ms"] > 0 for a in answers)
    # Every log line of the handler carries the request id of its own invocation.
    logged = {(r["message"], r["requestId"]) for r in records}
    for i in range(N):
        assert (f"start {i}", f"req-{i}") in logged, records
        assert (f"end {i}", f"req-{i}") in logged, records
    pids = {a["pid"] for a in answers}
    if runtime == "awslambdaric":
        assert inits == N  # each of its worker processes imports the handler
        assert len(pids) == N
    else:
        assert inits == 1  # one Init, whatever the mode
        if variant == "lambdakit-processes":
            assert len(pids) == N
        else:
            assert len(pids) == 1
        if variant == "lambdakit-threads":
            assert len({a["thread"] for a in answers}) == N


@needs_rie
def test_a_crashed_worker_process_is_replaced(tmp_path: Path) -> None:
    env = {**BASE_ENV, "AWS_LAMBDA_FUNCTION_TIMEOUT": "2"}
    with running_lmi_rie(tmp_path, "lambdakit", "lmi.sleepy", "2", env) as rie:
        assert rie.invoke_when_idle({"i": 0}, "before").status == 200
        crashed = rie.invoke_when_idle({"i": 1, "crash": True}, "crash")
        # The platform answers for the invocation the worker took with it (RIE: its timeout).
        assert crashed.headers.get("Error-Type") == "Sandbox.Timedout", crashed
        answers = [rie.invoke_when_idle({"i": i}, f"after-{i}") for i in range(2, 6)]
        output = rie.output()
    assert [a.status for a in answers] == [200] * 4, output
    assert [a.json()["request_id"] for a in answers] == [f"after-{i}" for i in range(2, 6)]
    assert "exited with status 3" in output
    assert output.count("LMI-INIT") == 1  # the new worker is forked, not initialised again


@needs_rie
def test_sigterm_stops_and_reaps_every_worker(tmp_path: Path) -> None:
    with running_lmi_rie(tmp_path, "lambdakit", "lmi.sleepy", "3", BASE_ENV) as rie:
        workers: set[int] = set()
        deadline = time.monotonic() + 20
        while len(workers) < 3 and time.monotonic() < deadline:
            with ThreadPoolExecutor(3) as pool:
                answers = list(pool.map(lambda i: rie.invoke_when_idle({"i": i}), range(3)))
            workers |= {a.json()["pid"] for a in answers}
        assert len(workers) == 3
        parents = {_ppid(pid) for pid in workers}
        assert len(parents) == 1
        parent = parents.pop()
        os.kill(parent, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")], "not reaped"
        while _alive(parent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(parent)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_LAMBDA_MAX_CONCURRENCY", "0"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "-2"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "four"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", ""),
        ("LAMBDAKIT_WORKERS", "forks"),
    ],
)
def test_a_bad_setting_is_one_clear_line(name: str, value: str) -> None:
    env = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
        "AWS_LAMBDA_MAX_CONCURRENCY": "2",
        name: value,
    }
    done = subprocess.run(
        [sys.executable, "-m", "lambdakit.runtime", "lmi.sleepy"],
        cwd=FUNCTIONS,
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 1
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert name in stderr and repr(value) in stderr
    assert b"LMI-INIT" not in done.stdout  # refused before the handler was imported
