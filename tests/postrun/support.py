"""Helpers for the post-runner tests: command lines, environments, runtimes."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from tests.serving import BASH_RUNTIME, REPO, Serve

POST_RUN = (sys.executable, "-m", "lambdakit", "post-run")
RAW_RUNTIME = Path(__file__).resolve().parent / "runtimes" / "raw_runtime.py"
ENTRY_SH = REPO / "layer" / "entry.sh"
SEED_COMMAND = "sleep 2 && echo done $POST_RUNNER_REQUEST_ID"


_OPTIONS = ("COMMAND", "SHELL", "MODE", "LOG_LEVEL", "TIMEOUT")


def env_flags(**variables: str) -> tuple[str, ...]:
    """``--env`` flags for serve; ``COMMAND=x`` means AWS_LAMBDA_POST_RUNNER_COMMAND=x."""
    flags: list[str] = []
    for key, value in variables.items():
        name = f"AWS_LAMBDA_POST_RUNNER_{key}" if key in _OPTIONS else key
        flags += ["--env", f"{name}={value}"]
    return tuple(flags)


def bash_post_run(*flags: str, handler: str = "function.echo_event") -> tuple[str, ...]:
    """serve flags running the bash+curl runtime behind ``lambdakit post-run``."""
    return (
        "--code-dir", str(BASH_RUNTIME), "--handler", handler, "--function-name", "f",
        *flags, "--", *POST_RUN, "--", "./bootstrap",
    )  # fmt: skip


def timed_invoke(serve: Serve, payload: object = None) -> tuple[float, dict[str, str], bytes]:
    """Invoke ``f``; returns (seconds taken, headers, body); fails on a non-200 status."""
    started = time.monotonic()
    status, headers, body = serve.invoke("f", json.dumps(payload or {}).encode())
    elapsed = time.monotonic() - started
    assert status == 200, body
    return elapsed, headers, body


def line_index(output: str, pattern: str) -> int:
    """Index of the first output line matching ``pattern`` (AssertionError if none)."""
    for index, line in enumerate(output.splitlines()):
        if re.search(pattern, line):
            return index
    raise AssertionError(f"no line matches {pattern!r} in:\n{output}")
