"""The post-runner under AWS's Runtime Interface Emulator (RIE).

RIE answers the caller only when the runtime asks for the next event (unlike Lambda and
``lambdakit serve``, which answer on ``/response``), so under RIE the caller's response waits for
the command whichever call a post-runner holds: the original holds ``/response``, we hold
``next``.  What RIE does show: the command runs after the result is posted, the runtime gets its
``202`` at once, and the next invocation starts only after the command.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postrun.support import POST_RUN, RAW_RUNTIME, SEED_COMMAND
from tests.serving import REPO

RIE = REPO / ".cache" / "aws-lambda-rie-x86_64"

pytestmark = pytest.mark.skipif(
    not RIE.exists(), reason=f"AWS's RIE is not at {RIE} (python -m bench.rie fetches it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_rie(command: list[str], log: Path, env: dict[str, str]) -> Iterator[int]:
    api = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(RIE),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{api}",
                "--runtime-api-address",
                f"127.0.0.1:{free_port()}",
                *command,
            ],
            cwd=RAW_RUNTIME.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", api), 1):
                break
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield api
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def invoke(port: int, payload: bytes) -> tuple[float, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    try:
        connection.request("POST", "/2015-03-31/functions/function/invocations", payload)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
    finally:
        connection.close()
    return time.monotonic() - started, body


def test_seed_check_under_rie(tmp_path: Path) -> None:
    log = tmp_path / "rie.log"
    env = {"AWS_LAMBDA_POST_RUNNER_COMMAND": SEED_COMMAND}
    command = [*POST_RUN, "--", sys.executable, str(RAW_RUNTIME)]
    with running_rie(command, log, env) as port:
        first_took, body = invoke(port, b'{"n": 1}')
        assert body == b'{"n": 1}'
        second_took, _ = invoke(port, b'{"n": 2}')
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    ids = re.findall(r"START RequestId: (\S+)", text)
    assert len(ids) == 2
    done_first = lines.index(f"done {ids[0]}")
    # The command ran after the result was posted, and the next invocation only after it.
    assert next(i for i, line in enumerate(lines) if line.startswith("posting ")) < done_first
    assert done_first < lines.index(f"START RequestId: {ids[1]} Version: $LATEST")
    # The runtime was not blocked: its 202 came at once, while the command slept.
    postings = [float(line.split()[1]) for line in lines if line.startswith("posting ")]
    accepted = [float(line.split()[2]) for line in lines if line.startswith("accepted 202 ")]
    assert accepted[0] - postings[0] < 0.3
    # RIE's own limitation: the caller is answered only at the runtime's next call.
    assert first_took >= 1.8 and second_took >= 1.8
