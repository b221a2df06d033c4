"""Chaos: concurrent callers while runtimes and extensions are SIGKILLed at random.

One ``lambdakit serve``, two functions: ``py`` (lambdakit's Python runtime, with the tests'
bash+curl external extension) and ``sh`` (the tests' bash+curl runtime).  Four client threads,
each on its own keep-alive connection, invoke them back to back for a few seconds while a killer
thread SIGKILLs a random process of serve's (a runtime, an extension, a curl of theirs) every
100 to 250 ms.  Then:

- every invocation was answered: 200, with the event back or a typed platform error
  (``Runtime.*``, ``Extension.*``, ``Sandbox.*`` in ``errorType``); never a reset connection,
  never a timeout, never a hang;
- both functions serve normal invocations again at once;
- serve holds no more file descriptors than after the warm-up (a small constant allowed);
- no process seen during the run is left once serve has stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serving import BASH_RUNTIME, REPO, Serve, running_serve

CHAOS = REPO / "tests" / "fixtures" / "functions" / "chaos"
BASH_EXTENSIONS = REPO / "tests" / "fixtures" / "extensions" / "bash"
FUNCTIONS = ("py", "sh")
CLIENTS = 4
CHAOS_SECONDS = 4.0
#: How many more descriptors serve may hold at the end than after the warm-up.
FD_SLACK = 4
PLATFORM_ERRORS = ("Runtime.", "Extension.", "Sandbox.")
#: What the bash runtime (tests/fixtures/runtimes/bash) posts when its handler's subshell dies.
KILLED_HANDLER = "HandlerFailed"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of ``root``."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            parents.setdefault(info[0], []).append((int(entry), info[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, start in parents.get(todo.pop(), []):
            found[pid] = start
            todo.append(pid)
    return found


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Tally:
    ok: int = 0
    platform_errors: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _invoke(conn: http.client.HTTPConnection, name: str, payload: bytes) -> tuple[int, str, bytes]:
    conn.request("POST", f"/2015-03-31/functions/{name}/invocations", payload)
    response = conn.getresponse()
    return response.status, response.getheader("X-Amz-Function-Error") or "", response.read()


def _event_of(body: bytes) -> object:
    try:
        return json.loads(body).get("event")
    except (ValueError, AttributeError):
        return None


def _judge(tally: Tally, name: str, payload: bytes, answer: tuple[int, str, bytes]) -> None:
    status, function_error, body = answer
    with tally.lock:
        if status != 200:
            tally.failures.append(f"{name}: HTTP {status} {body[:200]!r}")
        elif not function_error:
            # sh echoes the event; py answers {"event": ..., "pid": ...}
            echoed = body == payload if name == "sh" else _event_of(body) == json.loads(payload)
            if echoed:
                tally.ok += 1
            else:
                tally.failures.append(f"{name}: sent {payload!r}, got {body[:200]!r}")
        else:
            error = json.loads(body)
            kind = error.get("errorType")
            if name == "sh" and kind == KILLED_HANDLER:
                # The killer hit the bash runtime's handler subshell: the runtime reports that
                # as the function's own error, typed, as it should.
                tally.platform_errors[kind] = tally.platform_errors.get(kind, 0) + 1
            elif not (isinstance(kind, str) and kind.startswith(PLATFORM_ERRORS)):
                tally.failures.append(f"{name}: untyped function error {body[:200]!r}")
            elif "Timedout" in kind:
                tally.failures.append(f"{name}: an invocation hung until its timeout: {body!r}")
            else:
                tally.platform_errors[kind] = tally.platform_errors.get(kind, 0) + 1


def _client(serve: Serve, index: int, stop_at: float, tally: Tally) -> None:
    conn = serve.connection(timeout=30)
    n = 0
    try:
        while time.monotonic() < stop_at:
            name = FUNCTIONS[(index + n) % 2]
            payload = json.dumps({"client": index, "n": n, "ms": 10}).encode()
            n += 1
            try:
                answer = _invoke(conn, name, payload)
            except (OSError, http.client.HTTPException) as exc:
                with tally.lock:
                    tally.failures.append(f"{name}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = serve.connection(timeout=30)
                continue
            _judge(tally, name, payload, answer)
    finally:
        conn.close()


def _killer(serve_pid: int, stop: threading.Event, seen: dict[int, int], killed: list[str]) -> None:
    chooser = random.Random(10)
    while not stop.wait(chooser.uniform(0.1, 0.25)):
        family = descendants(serve_pid)
        seen.update(family)
        if not family:
            continue
        victim = chooser.choice(sorted(family))
        try:
            name = Path(f"/proc/{victim}/cmdline").read_bytes().replace(b"\0", b" ")[:80]
            os.kill(victim, signal.SIGKILL)
        except OSError:
            continue
        killed.append(name.decode("utf-8", "replace"))


def _all_warm(serve: Serve, rounds: int = 3) -> None:
    """Bring every environment of both functions up and warm (3 py, 2 sh), several times."""
    for _ in range(rounds):
        threads = [
            threading.Thread(
                target=lambda name=name: serve.invoke(name, b'{"ms": 300}', timeout=30)
            )
            for name in ("py", "py", "py", "sh", "sh")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)


def _serves_normally(serve: Serve, name: str, deadline: float) -> None:
    """A normal invocation of ``name`` succeeds (the first may still meet a dying process)."""
    payload = b'{"after": "chaos"}'
    last: tuple[int, dict[str, str], bytes] | None = None
    while time.monotonic() < deadline:
        last = serve.invoke(name, payload, timeout=30)
        status, headers, _body = last
        if status == 200 and "x-amz-function-error" not in headers:
            return
        time.sleep(0.2)
    pytest.fail(f"{name} did not recover: {last}")


@pytest.fixture
def config() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lambdakit-chaos-") as folder:
        path = Path(folder) / "lambdakit.toml"
        path.write_text(
            f"""
[functions.py]
runtime = "python"
code_dir = "{CHAOS}"
handler = "app.work"
extensions_dir = "{BASH_EXTENSIONS}"
timeout = 10
concurrency = 3

[functions.sh]
code_dir = "{BASH_RUNTIME}"
handler = "function.echo_event"
timeout = 10
concurrency = 2
"""
        )
        yield path


def test_every_invocation_is_answered_while_runtimes_and_extensions_are_killed(
    config: Path,
) -> None:
    tally = Tally()
    seen: dict[int, int] = {}
    killed: list[str] = []
    with running_serve("--config", str(config)) as serve:
        pid = serve.process.pid
        _all_warm(serve)
        fds_before = fd_count(pid)
        seen.update(descendants(pid))

        stop = threading.Event()
        killer = threading.Thread(target=_killer, args=(pid, stop, seen, killed))
        stop_at = time.monotonic() + CHAOS_SECONDS
        clients = [
            threading.Thread(target=_client, args=(serve, i, stop_at, tally))
            for i in range(CLIENTS)
        ]
        killer.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join(CHAOS_SECONDS + 60)
        stop.set()
        killer.join(10)
        hung = [client for client in clients if client.is_alive()]

        deadline = time.monotonic() + 30
        for name in FUNCTIONS:
            _serves_normally(serve, name, deadline)
        _all_warm(serve)
        for name in FUNCTIONS:
            for _ in range(3):
                _serves_normally(serve, name, deadline)
        fds_after = fd_count(pid)
        seen.update(descendants(pid))
        serve.stop()
        assert "Traceback" not in serve.errors(), serve.errors()

    left = {p: start for p, start in seen.items() if (info := _stat(p)) and info[1] == start}
    for p in left:  # do not leave them to the next test
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    summary = (
        f"{tally.ok} ok, platform errors {tally.platform_errors}, {len(killed)} kills, "
        f"failures {tally.failures[:5]}"
    )
    assert not hung, summary
    assert not tally.failures, summary
    assert tally.ok >= 20, summary
    assert len(killed) >= 8, summary
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after, summary)
    assert not left, (left, summary)
