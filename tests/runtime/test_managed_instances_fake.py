"""Managed Instances mode against a fake concurrent Runtime API: what RIE cannot show.

RIE in LMI mode sends no ``Lambda-Runtime-Trace-Id`` and cannot be told to refuse an init error,
so trace ids, ``after_response`` and the tolerated 403 on ``/init/error`` are checked here, with
the real runtime process on a real socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.fake_concurrent_api import FakeConcurrentApi
from tests.runtime.support import FUNCTIONS


@contextlib.contextmanager
def running_runtime(
    api: FakeConcurrentApi, handler: str, tmp_path: Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The runtime under test (its output in ``tmp_path/out.log``); always stopped and reaped."""
    environ = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_MAX_CONCURRENCY": "2",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        **env,
    }
    environ.pop("_X_AMZN_TRACE_ID", None)
    with (tmp_path / "out.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lambdakit.runtime", handler],
            cwd=FUNCTIONS,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        api.close()
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_lines(tmp_path: Path, expected: set[str]) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in (tmp_path / "out.log").read_text().splitlines()
            if line.startswith("{")
        ]
        if expected <= {str(r.get("message")) for r in lines} or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


MODES = {
    "async": ("lmi.adeferred", {}),
    "threads": ("lmi.deferred", {"LAMBDAKIT_WORKERS": "threads"}),
    "processes": ("lmi.deferred", {}),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_trace_id_and_after_response_belong_to_their_invocation(tmp_path: Path, mode: str) -> None:
    handler, env = MODES[mode]
    api = FakeConcurrentApi()
    with running_runtime(api, handler, tmp_path, **env):
        for i in range(2):
            api.add(f"id-{i}", {"i": i, "sleep": 0.3}, trace_id=f"Root=1-{i}")
        posted = api.wait_posted(2)
        lines = _log_lines(tmp_path, {"after id-0", "after id-1"})
    answers = {rid: json.loads(p.body) for rid, p in posted.items()}
    assert set(answers) == {"id-0", "id-1"}, (tmp_path / "out.log").read_text()
    for i in range(2):
        answer = answers[f"id-{i}"]
        assert answer["trace_id"] == f"Root=1-{i}"
        # The process-wide variable is per invocation only where one process serves one.
        assert answer["trace_env"] == (f"Root=1-{i}" if mode == "processes" else None)
        after = [r for r in lines if r.get("message") == f"after id-{i}"]
        assert after and all(r["requestId"] == f"id-{i}" for r in after), lines


def test_an_init_error_is_posted_once_and_a_403_is_tolerated(tmp_path: Path) -> None:
    api = FakeConcurrentApi(init_error_status=403)
    with running_runtime(api, "lmi.missing", tmp_path) as process:
        status = process.wait(20)
    output = (tmp_path / "out.log").read_text()
    assert status == 1
    assert len(api.init_errors) == 1
    assert b"Runtime.HandlerNotFound" in api.init_errors[0].body
    assert "Traceback" not in output and "403" not in output, output
