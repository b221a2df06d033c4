"""No process of a function outlives its environment, even one that left with setsid()."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdakit.emulator.cgroups import PARENT, cgroup2_mount, own_cgroup
from tests.serving import BASH_RUNTIME, Serve, process_alive, running_serve

# Handlers for the tests' bash runtime: each starts a process in a session of its own and a
# daemon (double fork, new session, its parent gone), as a function's library might.
_ESCAPE = """
escape () {
  setsid sleep 300 &
  ( setsid bash -c 'sleep 301 </dev/null >/dev/null 2>&1 & exit 0' & )
  sleep 0.2
  printf '{"escaped": true}'
}

escape_and_crash () {
  escape >/dev/null
  return 42
}
"""


#: Each test runs with a cgroup per environment, and with process groups and a marker variable.
MODES = pytest.mark.parametrize("mode", [(), ("--no-cgroups",)], ids=["cgroups", "no-cgroups"])


@pytest.fixture
def marker() -> Iterator[str]:
    """A value of ESCAPE_MARK for one test's functions; whatever carries it is killed after."""
    token = uuid.uuid4().hex
    yield token
    for pid in _marked(token):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _marked(token: str) -> list[int]:
    """Live processes whose environment holds ESCAPE_MARK=token."""
    needle = f"ESCAPE_MARK={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0") and process_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _escapees(token: str) -> list[int]:
    """The marked ``sleep 300`` and ``sleep 301``: the processes that left their group."""
    found = []
    for pid in _marked(token):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if cmdline.read() in (b"sleep\x00300\x00", b"sleep\x00301\x00"):
                found.append(pid)
    return found


def _gone(token: str, timeout: float = 10.0) -> list[int]:
    """Wait until no marked process is alive; those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := _marked(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _serve_cgroups(pid: int) -> list[Path]:
    """The cgroups serve ``pid`` made (under the cgroup2 mount's or our own ``lambdakit``)."""
    mount = cgroup2_mount()
    own = own_cgroup()
    if mount is None:
        return []
    parents = {mount / PARENT, mount / (own or "/").lstrip("/") / PARENT}
    return [path for parent in parents for path in parent.glob(f"serve-{pid}-*")]


def _args(tmp_path: Path, token: str, handler: str, mode: tuple[str, ...]) -> tuple[str, ...]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "escape.sh").write_text(_ESCAPE)
    return (
        "--code-dir",
        str(code),
        "--bootstrap",
        str(BASH_RUNTIME / "bootstrap"),
        "--handler",
        handler,
        "--function-name",
        "f",
        "--env",
        f"ESCAPE_MARK={token}",
        *mode,
    )


def _skip_without_cgroups(serve: Serve, mode: tuple[str, ...]) -> None:
    """The cgroup mode where cgroup v2 is not usable (not root, no delegation): serve said so
    at start and runs as with --no-cgroups, which the other mode tests."""
    if not mode and "no cgroup for environments" in serve.errors():
        pytest.skip("cgroup v2 is not usable here; --no-cgroups mode covers the fallback")


@MODES
def test_processes_that_left_their_group_die_with_a_replaced_environment(
    tmp_path: Path, marker: str, mode: tuple[str, ...]
) -> None:
    with running_serve(*_args(tmp_path, marker, "escape.escape_and_crash", mode)) as serve:
        status, headers, _ = serve.invoke("f")
        _skip_without_cgroups(serve, mode)
        assert status == 200 and headers.get("x-amz-function-error") == "Unhandled"
        assert _gone(marker) == []
        assert serve.wait_for_errors("killed 2 process(es) left after its Shutdown phase")
        if not mode:  # the environment's cgroup is gone with it; serve's own remains
            (own,) = _serve_cgroups(serve.process.pid)
            deadline = time.monotonic() + 5
            while (left := [p.name for p in own.iterdir() if p.is_dir()]) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.02)
            assert left == []


@MODES
def test_processes_that_left_their_group_die_when_serve_is_stopped(
    tmp_path: Path, marker: str, mode: tuple[str, ...]
) -> None:
    with running_serve(*_args(tmp_path, marker, "escape.escape", mode)) as serve:
        assert serve.invoke("f")[0] == 200
        _skip_without_cgroups(serve, mode)
        assert len(_escapees(marker)) == 2
        assert len(_serve_cgroups(serve.process.pid)) == (0 if mode else 1)
        assert serve.stop(signal.SIGTERM) == 0
        assert _gone(marker, timeout=2.0) == []
        assert _serve_cgroups(serve.process.pid) == []


@MODES
def test_the_next_serve_removes_what_a_killed_serve_left(
    tmp_path: Path, marker: str, mode: tuple[str, ...]
) -> None:
    with running_serve(*_args(tmp_path, marker, "escape.escape", mode)) as serve:
        assert serve.invoke("f")[0] == 200
        _skip_without_cgroups(serve, mode)
        escaped = _escapees(marker)
        assert len(escaped) == 2
        left = _serve_cgroups(serve.process.pid)
        serve.stop(signal.SIGKILL)
        # SIGKILL lets serve do nothing: the runtime dies with it (PR_SET_PDEATHSIG), but
        # processes in sessions of their own are not its children and live on (until a serve
        # starts: one of a test running in parallel may already have swept them).
        time.sleep(0.3)
        assert set(_marked(marker)) <= set(escaped)
    with running_serve(
        "--code-dir", str(BASH_RUNTIME), "--handler", "function.echo_event", *mode
    ) as serve:
        assert _gone(marker, timeout=2.0) == []
        # (Any serve that starts sweeps them, and tests run in parallel: which one logs it varies.)
        assert not any(path.exists() for path in left)
