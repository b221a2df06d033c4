"""``lambdakit serve --amqp`` workers and ``lambdakit gateway`` processes for the AMQP tests.

Every queue is named after a function, and the broker is shared by every test, so each test
names its functions uniquely (:func:`unique`).  Each worker gets its own ``lambdakit.toml`` so
that the function sees which instance runs it (``INSTANCE``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.serving import _LISTENING, REPO, Serve, running_serve

FUNCTIONS = REPO / "tests" / "amqp" / "functions"


def unique(prefix: str) -> str:
    """A function (and queue) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    directory: Path, instance: str, functions: Mapping[str, Mapping[str, Any]]
) -> Path:
    """A ``lambdakit.toml`` serving ``functions`` (name -> options, ``handler`` in app.py)."""
    lines: list[str] = []
    for name, options in functions.items():
        table = {"code_dir": str(FUNCTIONS), "runtime": "python", **options}
        table["env"] = {"INSTANCE": instance, **dict(options.get("env", {}))}
        lines.append(f"[functions.{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
        lines.append("")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lambdakit-{instance}.toml"
    path.write_text("\n".join(lines))
    return path


@contextlib.contextmanager
def workers(
    directory: Path,
    url: str,
    functions: Mapping[str, Mapping[str, Any]],
    count: int = 1,
    *args: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[Serve]]:
    """``count`` workers (instances ``w0``, ``w1`` ...) consuming ``functions`` on ``url``."""
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(
                running_serve(
                    "--config",
                    str(write_config(directory, f"w{i}", functions)),
                    "--amqp",
                    url,
                    *args,
                    env=env,
                )
            )
            for i in range(count)
        ]
        yield started


@contextlib.contextmanager
def running_gateway(*args: str, env: Mapping[str, str] | None = None) -> Iterator[Serve]:
    """``lambdakit gateway --port 0 ARGS...``, stopped (SIGTERM, then SIGKILL) afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lambdakit", "gateway", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    gateway = Serve(process)
    try:
        deadline = time.monotonic() + 20
        while True:
            match = _LISTENING.search(gateway.output())
            if match:
                gateway.host, gateway.port = match.group(1), int(match.group(2))
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"lambdakit gateway did not start (exit {process.poll()}):\n"
                    f"{gateway.output()}\n{gateway.errors()}"
                )
            time.sleep(0.02)
        yield gateway
    finally:
        gateway.stop()
