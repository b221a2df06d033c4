"""Runtime test helpers: the handler set, and runtimes served by ``lambdakit serve`` or RIE."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.serving import REPO, Serve, running_serve

FUNCTIONS = Path(__file__).resolve().parent / "functions"
RIE = REPO / ".cache" / "aws-lambda-rie-x86_64"
FUNCTION = "f"

#: The runtime commands under test: ours, and the reference.
RUNTIMES = {
    "lambdakit": [sys.executable, "-m", "lambdakit.runtime"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric"],
}


def make_code_dir(tmp_path: Path) -> Path:
    """A copy of the handler set, plus a module with a syntax error (kept out of the repo so
    linters and type checkers never see it)."""
    code = tmp_path / "code"
    shutil.copytree(FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__"))
    (code / "syntax_bad.py").write_text("def handler(:\n    return 1\n")
    return code


@contextlib.contextmanager
def serve_handler(
    code_dir: Path, handler: str, runtime: str = "lambdakit", *extra: str
) -> Iterator[Serve]:
    """``lambdakit serve`` running ``handler`` under ``runtime`` (function name ``f``)."""
    args = ["--code-dir", str(code_dir), "--function-name", FUNCTION, *extra]
    with running_serve(*args, "--", *RUNTIMES[runtime], handler) as serve:
        yield serve


def invoke_json(
    serve: Serve, payload: object = None, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    """Invoke ``f``; returns (status, headers, parsed JSON body)."""
    body = json.dumps(payload if payload is not None else {}).encode()
    status, headers, raw = serve.invoke(FUNCTION, body, **kwargs)
    return status, headers, json.loads(raw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RieProcess:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def invoke(self, payload: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
        import http.client

        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("POST", "/2015-03-31/functions/function/invocations", payload)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@contextlib.contextmanager
def running_rie(code_dir: Path, command: list[str], tmp_path: Path) -> Iterator[RieProcess]:
    """AWS's RIE on free loopback ports running ``command`` as the runtime; always reaped."""
    api_port, runtime_port = free_port(), free_port()
    log = tmp_path / f"rie-{api_port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(RIE),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{api_port}",
                "--runtime-api-address",
                f"127.0.0.1:{runtime_port}",
                *command,
            ],
            cwd=code_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LAMBDA_TASK_ROOT": str(code_dir)},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", api_port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"RIE did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield RieProcess(f"http://127.0.0.1:{api_port}", log)
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL after a grace period; always wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers in the group (the runtime)
