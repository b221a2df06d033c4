"""The servers under test, each running the minimal runtime: AWS's RIE, the Lambda Runtime API
Daemon (github.com/fadams/lambda-runtime-api-daemon, built locally) and lambdakit serve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
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

    kind: str  # "rie", "daemon" or "serve"
    process: Managed
    port: int
    invoke_path: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int | None:
        return self.process.stop()


#: The minimal runtime's client (bench/minimal_runtime.py): "raw" or "http.client".
RUNTIME_CLIENTS = ("raw", "http.client")


def _base_env(sleep_ms: int, client: str = "raw") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["BENCH_SLEEP_MS"] = str(sleep_ms)
    env["BENCH_RUNTIME_CLIENT"] = client
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_rie(sleep_ms: int, name: str, client: str = "raw") -> Server:
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
    env = _base_env(sleep_ms, client)
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "30"
    proc = Managed(name, argv, env, cwd=Path(tempfile.gettempdir()))
    try:
        wait_for_port(port, proc, START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("rie", proc, port, "/2015-03-31/functions/function/invocations")


#: How to get the daemon's binary, said wherever it is missing.
DAEMON_HOWTO = (
    "build it with `bash ../shared/tools/daemon.sh SRC` (SRC: the source of "
    "github.com/fadams/lambda-runtime-api-daemon; the script's header says how to get it and "
    "what it builds), which puts it in ${TMPDIR:-/tmp}/lrad/, or point LRAD_BIN at a binary"
)
#: The daemon's settings that would change what is measured (AMQP, OpenFaaS routes, log format).
_DAEMON_UNSET = (
    "AMQP_URI",
    "AMQP_USERNAME",
    "AMQP_PASSWORD",
    "ENABLE_OPENFAAS",
    "USE_STRUCTURED_LOGGING",
    "KUBERNETES_INIT_CONTAINER",
    "LOG_LEVEL",
    "PRINT_REPORTS",
    "INVOKE_API_HOST",
    "RUNTIME_API_HOST",
    "PORT",
    "RUNTIME_API_PORT",
    "MAX_CONCURRENCY",
)


class DaemonMissing(RuntimeError):
    """No daemon binary here: the benchmark records "not measured" and goes on."""


def daemon_path() -> Path:
    """The daemon's binary: ``$LRAD_BIN``, else where ``daemon.sh`` builds it (may not exist)."""
    explicit = os.environ.get("LRAD_BIN")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TMPDIR") or "/tmp") / "lrad" / "lambda-runtime-api-daemon"


def start_daemon(
    sleep_ms: int,
    name: str,
    concurrency: int = 8,
    extra_env: Mapping[str, str] | None = None,
    client: str = "raw",
) -> Server:
    """The Lambda Runtime API Daemon on a pair of free ports, the runtime as its command.

    Configured through its environment variables, as documented in its README: ``PORT`` and
    ``INVOKE_API_HOST`` (Invoke API), ``RUNTIME_API_PORT`` and ``RUNTIME_API_HOST`` (Runtime
    API), ``MAX_CONCURRENCY`` (runtimes it may start, on demand), ``AWS_LAMBDA_FUNCTION_NAME``
    and ``AWS_LAMBDA_FUNCTION_TIMEOUT``; no ``AMQP_URI``, so no broker.  It passes its own
    environment on to the runtime.  Raises :class:`DaemonMissing` when there is no binary.
    """
    binary = daemon_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise DaemonMissing(f"not measured: no daemon binary at {binary}; {DAEMON_HOWTO}")
    port, api_port = free_port(), free_port()
    env = _base_env(sleep_ms, client)
    for key in _DAEMON_UNSET:
        env.pop(key, None)
    env.update(
        {
            "INVOKE_API_HOST": "127.0.0.1",
            "PORT": str(port),
            "RUNTIME_API_HOST": "127.0.0.1",
            "RUNTIME_API_PORT": str(api_port),
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
            "MAX_CONCURRENCY": str(concurrency),
        }
    )
    env.update(extra_env or {})
    proc = Managed(name, [str(binary), *RUNTIME_ARGV], env, cwd=Path(tempfile.gettempdir()))
    try:
        wait_for_port(port, proc, START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("daemon", proc, port, "/2015-03-31/functions/bench/invocations")


def daemon_version(server: Server) -> str | None:
    """The version the daemon logs at start (``Version: version=1.1.0``), if seen."""
    for line in server.process.tail(40):
        if match := re.search(r"Version:\s*version=(\S+)", line):
            return match.group(1)
    return None


def serve_argv(command: str = "serve") -> list[str]:
    """``lambdakit COMMAND`` from this interpreter's environment (``serve`` by default)."""
    script = Path(sys.executable).with_name("lambdakit")
    if script.exists():
        return [str(script), command]
    return [sys.executable, "-m", "lambdakit", command]


def serve_source() -> str | None:
    """The lambdakit package ``lambdakit serve`` runs here (``PYTHONPATH`` may point elsewhere)."""
    code = "import os, lambdakit; print(os.path.dirname(os.path.abspath(lambdakit.__file__)))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=_base_env(0),
            cwd=tempfile.gettempdir(),  # as the lambdakit script, not finding ./lambdakit
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def start_serve(
    sleep_ms: int,
    name: str,
    concurrency: int = 8,
    extra_args: Sequence[str] = (),
    client: str = "raw",
    extra_env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> Server:
    """``lambdakit serve --port 0`` running the minimal runtime; waits for its listening line.

    ``command`` runs serve instead of this interpreter's ``lambdakit serve`` (another
    interpreter's ``python -m lambdakit serve``, say)."""
    argv = [
        *(command or serve_argv()),
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
        "--env",
        f"BENCH_RUNTIME_CLIENT={client}",
        *extra_args,
        "--",
        *RUNTIME_ARGV,
    ]
    proc = Managed(name, argv, {**_base_env(sleep_ms, client), **(extra_env or {})}, cwd=REPO)
    try:
        match = proc.wait_for_line(r"listening on http://127\.0\.0\.1:(\d+)", START_TIMEOUT_S)
    except BaseException:
        proc.stop()
        raise
    return Server("serve", proc, int(match.group(1)), "/2015-03-31/functions/bench/invocations")
