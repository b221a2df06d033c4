"""The two servers under test, AWS's RIE and lambdakit serve, each running the minimal runtime."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import minimal_runtime
from bench.procs import Managed, free_port, wait_for_port
from bench.rie import REPO, ensure_rie

START_TIMEOUT_S = 20.0
RUNTIME_ARGV = [sys.executable, "-S", str(Path(minimal_runtime.__file__).resolve())]


@dataclass
class Server:
    """A running server: its process and where to invoke it."""

    kind: str  # "rie" or "serve"
    process: Managed
    port: int
    invoke_path: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int | None:
        return self.process.stop()


def _base_env(sleep_ms: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["BENCH_SLEEP_MS"] = str(sleep_ms)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_rie(sleep_ms: int, name: str) -> Server:
    """AWS's RIE on its own pair of free ports; the runtime inherits its environment."""
    rie = ensure_rie()
    port, api_port = free_port(), free_port()
    argv = [
        str(rie),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",
        f"127.0.0.1:{api_port}",
        *RUNTIME_ARGV,
    ]
    env = _base_env(sleep_ms)
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "30"
    proc = Managed(name, argv, env, cwd=Path(tempfile.gettempdir()))
    try:
        wait_for_port(port, proc, START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("rie", proc, port, "/2015-03-31/functions/function/invocations")


def serve_argv(command: str = "serve") -> list[str]:
    """``lambdakit COMMAND`` from this interpreter's environment (``serve`` by default)."""
    script = Path(sys.executable).with_name("lambdakit")
    if script.exists():
        return [str(script), command]
    return [sys.executable, "-m", "lambdakit", command]


def start_serve(
    sleep_ms: int, name: str, concurrency: int = 8, extra_args: Sequence[str] = ()
) -> Server:
    """``lambdakit serve --port 0`` running the minimal runtime; waits for its listening line."""
    argv = [
        *serve_argv(),
        "--port",
        "0",
        "--function-name",
        "bench",
        "--concurrency",
        str(concurrency),
        "--timeout",
        "30",
        "--log-format",
        "text",
        "--env",
        f"BENCH_SLEEP_MS={sleep_ms}",
        *extra_args,
        "--",
        *RUNTIME_ARGV,
    ]
    proc = Managed(name, argv, _base_env(sleep_ms), cwd=REPO)
    try:
        match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("serve", proc, int(match.group(1)), "/2015-03-31/functions/bench/invocations")
