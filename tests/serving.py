"""Run ``lambdakit serve`` as a real process on a free port, for tests.

``running_serve(*args)`` starts ``python -m lambdakit serve --port 0 ARGS...``, waits for its
"listening on" line, and always stops it (SIGTERM, a grace period, SIGKILL, wait), so no test
leaves a process behind even when it fails.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lambdakit.deathsig import terminated_with_parent

REPO = Path(__file__).resolve().parent.parent
BASH_RUNTIME = REPO / "tests" / "fixtures" / "runtimes" / "bash"
_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")


class Serve:
    """A running ``lambdakit serve`` process and its captured output."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._lines: list[str] = []
        self._errors: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(process.stdout, self._lines), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self._errors), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.host = ""
        self.port = 0

    def _read(self, stream: object, sink: list[str]) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        """Everything serve wrote to stdout so far (function logs, START/END/REPORT)."""
        with self._cond:
            return "\n".join(self._lines)

    def errors(self) -> str:
        """Everything serve wrote to stderr so far (its own diagnostics)."""
        with self._cond:
            return "\n".join(self._errors)

    def wait_for_errors(self, text: str, timeout: float = 5.0) -> bool:
        """Wait until serve's stderr holds ``text`` (its reader thread may lag a little)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in "\n".join(self._errors):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def wait_for_output(self, pattern: str, timeout: float = 10.0, count: int = 1) -> bool:
        """Wait until ``pattern`` (a regex) matches ``count`` lines of stdout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self._lines if regex.search(line)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def invoke(
        self,
        name: str,
        payload: bytes = b"{}",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """POST to the Invoke API; returns (status, lower-cased headers, body).

        ``name`` may carry a query: ``"fn?Qualifier=%24LATEST"``.
        """
        conn = self.connection(timeout)
        name, _, query = name.partition("?")
        path = f"/2015-03-31/functions/{name}/invocations" + (f"?{query}" if query else "")
        try:
            conn.request("POST", path, payload, dict(headers or {}))
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal serve and wait for it; kill it if it does not exit within ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for thread in self._threads:
            thread.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode


@contextlib.contextmanager
def running_serve(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
) -> Iterator[Serve]:
    """Start ``lambdakit serve --port 0 ARGS...``; stop it (and its runtimes) afterwards.

    Unless ``--state-dir`` is given, each serve stores its Event invocations in a fresh
    temporary directory, so that tests never see each other's events.
    """
    state: tempfile.TemporaryDirectory[str] | None = None
    if "--state-dir" not in args:
        state = tempfile.TemporaryDirectory(prefix="lambdakit-state-")
        args = ("--state-dir", state.name, *args)  # before any "-- COMMAND"
    command = [sys.executable, "-m", "lambdakit", "serve", "--port", "0", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        # A test run or benchmark killed with SIGTERM runs no cleanup: its serves still stop.
        preexec_fn=terminated_with_parent,  # noqa: PLW1509 (one prctl call, no lock taken)
    )
    serve = Serve(process)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            match = _LISTENING.search(serve.output())
            if match:
                serve.host, serve.port = match.group(1), int(match.group(2))
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"lambdakit serve did not start (exit {process.poll()}):\n"
                    f"{serve.output()}\n{serve.errors()}"
                )
            time.sleep(0.02)
        yield serve
    finally:
        serve.stop()
        if state is not None:
            state.cleanup()


def lambda_client(serve: Serve, read_timeout: float = 60) -> Any:
    """A boto3 Lambda client for ``serve`` (any credentials; no retries, so errors show)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "lambda",
        endpoint_url=serve.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=read_timeout),
    )


def aws_cli(
    serve: Serve, *args: str, region: str = "us-east-1"
) -> subprocess.CompletedProcess[str]:
    """``aws lambda ARGS... --endpoint-url serve`` with only a region and placeholder
    credentials: none of this machine's AWS configuration is read."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "aws"), "lambda", *args, "--endpoint-url", serve.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={
            **os.environ,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,  # AWS CLI v1 reads only this one
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        },
    )


def bash_function(*args: str, handler: str = "function.echo_event") -> tuple[str, ...]:
    """Flags that serve the tests' bash+curl runtime with ``handler``."""
    return ("--code-dir", str(BASH_RUNTIME), "--handler", handler, *args)


def process_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def frozen(pid: int) -> bool:
    """True if ``pid`` is frozen as serve freezes an environment: its cgroup v2 frozen
    (``cgroup.events``), or stopped by SIGSTOP (state ``T``) where there is no cgroup."""
    from lambdakit.emulator.cgroups import cgroup2_mount, own_cgroup

    mount, path = cgroup2_mount(), own_cgroup(f"/proc/{pid}/cgroup")
    if mount is not None and path:
        try:
            with open(mount / path.lstrip("/") / "cgroup.events") as events:
                if "frozen 1" in events.read().splitlines():
                    return True
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False
