"""SIGTERM runs on_shutdown hooks and the handler module's own signal handler while idle."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.runtime.support import invoke_json, make_code_dir, serve_handler
from tests.serving import process_alive


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return make_code_dir(tmp_path)


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("handler", "markers"),
    [
        ("shutdown_app.handler", {"hook", "module-handler"}),
        ("shutdown_hook_only.handler", {"hook-only"}),
    ],
)
def test_sigterm_while_waiting_for_the_next_event(
    code_dir: Path, tmp_path: Path, handler: str, markers: set[str]
) -> None:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    # Not frozen: the test plays the platform's part and sends SIGTERM itself (serve's own
    # shutdown, which thaws the environment first, is the next test).
    extra = ("--env", f"MARKER_DIR={marker_dir}", "--no-freeze")
    with serve_handler(code_dir, handler, "lambdakit", *extra) as serve:
        status, _, body = invoke_json(serve, {})
        assert status == 200, body
        pid = body["pid"]
        time.sleep(0.2)  # the runtime is now blocked in GET next
        os.kill(pid, signal.SIGTERM)
        assert _wait_for(lambda: {p.name for p in marker_dir.iterdir()} == markers), list(
            marker_dir.iterdir()
        )
        assert _wait_for(lambda: not process_alive(pid))
    for marker in markers:
        assert (marker_dir / marker).read_text() == str(pid)


def test_hooks_run_when_serve_shuts_the_environment_down(code_dir: Path, tmp_path: Path) -> None:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    extra = ("--env", f"MARKER_DIR={marker_dir}")
    with serve_handler(code_dir, "shutdown_app.handler", "lambdakit", *extra) as serve:
        status, _, body = invoke_json(serve, {})
        assert status == 200, body
    # Leaving the block stops serve, which shuts its environments down (SIGTERM, then SIGKILL).
    assert _wait_for(lambda: {p.name for p in marker_dir.iterdir()} == {"hook", "module-handler"})
