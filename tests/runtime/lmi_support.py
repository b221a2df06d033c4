"""AWS's RIE in its Lambda Managed Instances (LMI) mode, run without Docker.

RIE switches to LMI mode when ``AWS_LAMBDA_MAX_CONCURRENCY`` is in its environment.  In that mode
(aws-sam-cli 1.170's binary) it treats the function as a ZIP artefact: whatever its command line
or working directory say, it starts only ``/var/runtime/bootstrap``, ``/var/task/bootstrap`` or
``/opt/bootstrap`` (``rapid``'s ``prepareRuntimeBootstrap``: "No valid bootstrap binary found in
default locations" otherwise), with ``/var/task`` as the working directory, and as uid 993 /
gid 990, not as the caller.  So, outside a container image:

- RIE runs in a private mount namespace (``unshare --mount``, which needs root or
  CAP_SYS_ADMIN) where a temporary directory is bind-mounted over ``/var``: ``var/task`` holds
  the handlers, ``var/runtime/bootstrap`` is a script that execs the runtime under test;
- the interpreter must be reachable by uid 993: if one of its directories is closed to others
  (``/root`` for a pyenv Python), a world-readable tmpfs is mounted over it in that namespace,
  with the one subdirectory on the interpreter's path bind-mounted back in.

Nothing outside the namespace changes.  Invocations beyond the idle runtime loops are refused
(400 ``Runtime.Unavailable``): RIE does not queue them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtime.support import FUNCTIONS, RIE, RUNTIMES, free_port
from tests.serving import REPO

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def unavailable_reason() -> str | None:
    """Why RIE's LMI mode cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "RIE is Linux-only"
    if not RIE.is_file():
        return f"no RIE binary at {RIE} (make rie)"
    if shutil.which("unshare") is None:
        return "no unshare(1) to make a private mount namespace"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=10,
    )
    if probe.returncode != 0:
        return f"cannot make a private mount namespace: {probe.stderr.decode().strip()}"
    return None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LmiRie:
    def __init__(self, port: int, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.log = log
        self.process = process

    def invoke(
        self, payload: object, request_id: str | None = None, timeout: float = 30.0
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if request_id is not None:
            headers["X-Amzn-RequestId"] = request_id
        try:
            conn.request("POST", INVOKE_PATH, json.dumps(payload).encode(), headers)
            response = conn.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def invoke_when_idle(
        self, payload: object, request_id: str | None = None, within: float = 20.0
    ) -> Answer:
        """Invoke, retrying while RIE has no idle runtime loop (400 Runtime.Unavailable)."""
        deadline = time.monotonic() + within
        while True:
            answer = self.invoke(payload, request_id)
            busy = answer.status == 400 and b"Runtime.Unavailable" in answer.body
            if not busy or time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON objects the runtime wrote (one per line), in order."""
        records = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records


def _world_readable(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            full = os.path.join(root, name)
            os.chmod(full, os.stat(full).st_mode | 0o644)


def _closed_ancestor(path: Path) -> Path | None:
    """The first directory on ``path`` (from /) that others cannot traverse, if any."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def _namespace_script(var: Path, hold: Path, rie_args: list[str]) -> str:
    lines = ["set -e"]
    interpreter = Path(os.path.realpath(sys.executable))
    closed = _closed_ancestor(interpreter)
    if closed is not None:
        child = closed / interpreter.relative_to(closed).parts[0]
        if _closed_ancestor(child / "x") is not None and _closed_ancestor(child / "x") != closed:
            raise RuntimeError(f"{interpreter} has more than one closed directory")
        q = shlex.quote
        lines += [
            f"mount --bind {q(str(child))} {q(str(hold))}",
            f"mount -t tmpfs -o mode=0755 tmpfs {q(str(closed))}",
            f"mkdir {q(str(child))}",
            f"mount --bind {q(str(hold))} {q(str(child))}",
        ]
    lines.append(f"mount --bind {shlex.quote(str(var))} /var")
    lines.append("exec " + shlex.join(rie_args))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_lmi_rie(
    tmp_path: Path,
    runtime: str,
    handler: str,
    concurrency: str,
    env: dict[str, str] | None = None,
) -> Iterator[LmiRie]:
    """RIE in LMI mode running ``RUNTIMES[runtime] handler``; it and its children always end."""
    base = tmp_path / f"lmi-{runtime}-{free_port()}"
    var = base / "var"
    shutil.copytree(FUNCTIONS, var / "task", ignore=shutil.ignore_patterns("__pycache__"))
    bootstrap = var / "runtime" / "bootstrap"
    bootstrap.parent.mkdir(parents=True)
    bootstrap.write_text("#!/bin/sh\nexec " + shlex.join([*RUNTIMES[runtime], handler]) + "\n")
    _world_readable(var)
    bootstrap.chmod(0o755)
    hold = base / "hold"
    hold.mkdir()
    port = free_port()
    rie_args = [
        str(RIE),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",
        f"127.0.0.1:{free_port()}",
    ]
    script = _namespace_script(var, hold, rie_args)
    environ = {
        **os.environ,
        "AWS_LAMBDA_MAX_CONCURRENCY": concurrency,
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    environ.pop("LAMBDA_TASK_ROOT", None)
    log = base / "rie.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environ,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process, log)
        yield LmiRie(port, log, process)
    finally:
        stop_session(process)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"RIE did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def session_members(sid: int) -> list[int]:
    """Pids of the live (not zombie) processes of session ``sid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session
            members.append(int(entry.name))
    return members


def stop_session(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM RIE's group, SIGKILL after a grace period, always wait; then SIGKILL anything
    left in its session (the runtime's process group may be its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 5
    while (left := session_members(process.pid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
