"""``serve --watch``: an edited handler answers at once, and no invocation fails on the way.

Real ``lambdakit serve`` processes, our Python runtime and the bash+curl runtime, real files
edited while a client invokes in a loop.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.serving import BASH_RUNTIME, Serve, process_alive, running_serve

_PYTHON_HANDLER = """\
import os
import time

with open(os.environ["PID_FILE"], "a") as pids:  # one line per Init
    pids.write(f"{{os.environ['AWS_LAMBDA_FUNCTION_NAME']}} {{os.getpid()}}\\n")


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {{"version": {version}, "pid": os.getpid()}}
"""


def _wait(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _watching(serve: Serve) -> None:
    _wait(lambda: "for changes" in serve.errors(), what="the watcher to start")


def _reloads(serve: Serve) -> list[str]:
    return [line for line in serve.errors().splitlines() if "changed: reloading" in line]


def _pids(pid_file: Path) -> list[tuple[str, int]]:
    if not pid_file.exists():
        return []
    return [(n, int(p)) for n, p in (line.split() for line in pid_file.read_text().splitlines())]


class InvokeLoop:
    """A client invoking ``name`` back to back in a thread, keeping every answer."""

    def __init__(self, serve: Serve, name: str, payload: bytes = b"{}") -> None:
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

        def run() -> None:
            while not self._stop.is_set():
                try:
                    answer = serve.invoke(name, payload)
                except OSError as exc:  # serve is gone: a failure, and the end of the loop
                    answer = (0, {}, repr(exc).encode())
                    self._stop.set()
                with self._lock:
                    self.answers.append(answer)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [body for _, _, body in self.answers]

    def stop(self) -> list[tuple[int, dict[str, str], bytes]]:
        self._stop.set()
        self._thread.join(60)
        return self.answers


def _answers_after_the_reload(serve: Serve, loop: InvokeLoop) -> int:
    """Wait for the reload, then for a few more answers; the answers there were at the reload."""
    _wait(lambda: len(_reloads(serve)) == 1, what="the reload")
    after = len(loop.bodies())
    _wait(lambda: len(loop.bodies()) >= after + 6, what="answers after the reload")
    return after


def _gone(pid: int) -> bool:
    return not process_alive(pid)


def _assert_none_failed(answers: list[tuple[int, dict[str, str], bytes]]) -> None:
    failed = [a for a in answers if a[0] != 200 or "x-amz-function-error" in a[1]]
    assert not failed, failed[:3]


def test_an_edited_python_handler_answers_with_no_failed_invocation(tmp_path: Path) -> None:
    code, pid_file = tmp_path / "code", tmp_path / "pids"
    code.mkdir()
    handler = code / "app.py"
    handler.write_text(_PYTHON_HANDLER.format(version=1))
    flags = ("--watch", "--code-dir", str(code), "--timeout", "10", "--env", f"PID_FILE={pid_file}")
    with running_serve(*flags, "app.handler") as serve:
        _watching(serve)
        loop = InvokeLoop(serve, "function", b'{"sleep": 0.02}')
        _wait(lambda: len(loop.bodies()) >= 5, what="answers from the first version")
        handler.write_text(_PYTHON_HANDLER.format(version=2))
        after = _answers_after_the_reload(serve, loop)
        answers = loop.stop()
        _assert_none_failed(answers)
        # An environment started in the debounce window may answer with the new code before
        # the reload; once it is done, only the invocation then in flight may be an old one.
        versions = [json.loads(body)["version"] for _, _, body in answers[after + 1 :]]
        assert versions and set(versions) == {2}, versions
        assert len(_reloads(serve)) == 1
        assert re.search(r"app\.py changed: reloading function$", _reloads(serve)[0])
        old_pid = json.loads(answers[0][2])["pid"]
        _wait(lambda: not process_alive(old_pid), what="the old environment to be reaped")


def test_an_invocation_running_during_a_reload_finishes_on_the_old_code(tmp_path: Path) -> None:
    code, pid_file = tmp_path / "code", tmp_path / "pids"
    code.mkdir()
    handler = code / "app.py"
    handler.write_text(_PYTHON_HANDLER.format(version=1))
    flags = ("--watch", "--code-dir", str(code), "--timeout", "30", "--env", f"PID_FILE={pid_file}")
    with running_serve(*flags, "app.handler") as serve:
        _watching(serve)
        slow: list[tuple[int, dict[str, str], bytes]] = []
        thread = threading.Thread(
            target=lambda: slow.append(serve.invoke("function", b'{"sleep": 3}')), daemon=True
        )
        thread.start()
        assert serve.wait_for_output(r"^START RequestId", timeout=20)
        handler.write_text(_PYTHON_HANDLER.format(version=2))
        _wait(lambda: len(_reloads(serve)) == 1, what="the reload")
        _wait(lambda: len(_pids(pid_file)) == 2, what="the new environment's Init (pre-warm)")
        status, _, body = serve.invoke("function")  # while the slow one still runs
        assert status == 200 and json.loads(body)["version"] == 2
        assert not slow, "the new invocation should not have waited for the old one"
        thread.join(30)
        (answer,) = slow
        _assert_none_failed(slow)
        assert json.loads(answer[2])["version"] == 1
        old_pid = json.loads(answer[2])["pid"]
        assert old_pid != json.loads(body)["pid"]
        _wait(lambda: not process_alive(old_pid), what="the old environment to be reaped")


def test_an_edited_bash_handler_answers_with_no_failed_invocation(tmp_path: Path) -> None:
    code = tmp_path / "code"
    shutil.copytree(BASH_RUNTIME, code)
    script = code / "function.sh"
    original = script.read_text()
    script.write_text(original + "\nversion () {\n  printf '{\"version\": 1}'\n}\n")
    flags = ("--watch", "--code-dir", str(code), "--handler", "function.version")
    with running_serve(*flags) as serve:
        _watching(serve)
        loop = InvokeLoop(serve, "function")
        _wait(lambda: len(loop.bodies()) >= 5, what="answers from the first version")
        script.write_text(script.read_text().replace('"version": 1', '"version": 2'))
        after = _answers_after_the_reload(serve, loop)
        answers = loop.stop()
        _assert_none_failed(answers)
        bodies = {body for _, _, body in answers[after + 1 :]}
        assert bodies == {b'{"version": 2}'}, bodies
        assert re.search(r"function\.sh changed: reloading function$", _reloads(serve)[0])


def test_functions_sharing_a_code_directory_reload_together_and_warm_again(
    tmp_path: Path,
) -> None:
    shared, other, pid_file = tmp_path / "shared", tmp_path / "other", tmp_path / "pids"
    shared.mkdir()
    other.mkdir()
    (shared / "app.py").write_text(_PYTHON_HANDLER.format(version=1))
    (other / "app.py").write_text(_PYTHON_HANDLER.format(version=1))
    config = tmp_path / "lambdakit.toml"
    config.write_text(
        "[service]\nwatch = true\n"
        + "".join(
            f'[functions.{name}]\nruntime = "python"\nhandler = "app.handler"\n'
            f'code_dir = "{directory}"\nenv = {{ PID_FILE = "{pid_file}" }}\n'
            for name, directory in (("a", "shared"), ("b", "shared"), ("c", "other"))
        )
    )
    with running_serve("--config", str(config)) as serve:
        _watching(serve)
        first = {name: json.loads(serve.invoke(name)[2])["pid"] for name in ("a", "b", "c")}
        # What no function reads: compiled files, editors' swap and backup files, .git.
        (shared / "__pycache__").mkdir()
        (shared / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
        (shared / ".app.py.swp").write_bytes(b"x")
        (shared / "app.py~").write_text("x")
        (shared / ".git").mkdir()
        (shared / ".git" / "index").write_text("x")
        for _ in range(3):  # a burst of saves is one reload
            (shared / "app.py").write_text(_PYTHON_HANDLER.format(version=2))
            time.sleep(0.02)
        _wait(lambda: len(_pids(pid_file)) == 5, what="a and b warm again, without an invoke")
        reloads = _reloads(serve)
        assert len(reloads) == 1, reloads
        assert reloads[0].endswith("app.py changed: reloading a, b"), reloads[0]
        warmed = dict(_pids(pid_file)[3:])
        assert set(warmed) == {"a", "b"}
        for name in ("a", "b"):
            answer = json.loads(serve.invoke(name)[2])
            assert answer == {"version": 2, "pid": warmed[name]}  # the pre-warmed environment
            _wait(functools.partial(_gone, first[name]), what=f"the old {name} to be reaped")
        assert json.loads(serve.invoke("c")[2])["pid"] == first["c"]  # c's code did not change
        time.sleep(0.5)  # no second reload for anything written above
        assert len(_reloads(serve)) == 1
