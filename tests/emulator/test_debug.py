"""``serve --debug``: one environment, never frozen, no timeout, whatever else is configured."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lambdakit.emulator.config import DEBUG_TIMEOUT
from lambdakit.emulator.serve_command import build_config
from tests.serving import frozen, running_serve

_HANDLER = """\
import os
import time

with open(os.environ["PID_FILE"], "a") as pids:  # one line per Init
    pids.write(f"{os.getpid()}\\n")


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis()}
"""


def test_debug_overrides_concurrency_freeze_and_timeouts(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(_HANDLER)
    flags = ["--code-dir", str(tmp_path), "--timeout", "1", "--concurrency", "5", "app.handler"]
    plain, _ = build_config(flags, {})
    debugging, _ = build_config(["--debug", *flags], {})
    assert plain.functions["function"].timeout == 1 and plain.functions["function"].freeze
    function = debugging.functions["function"]
    assert debugging.debug and function.concurrency == 1 and not function.freeze
    assert function.timeout == function.init_timeout == function.idle_timeout == DEBUG_TIMEOUT


def test_under_debug_a_slow_invocation_answers_in_one_unfrozen_environment(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    (tmp_path / "app.py").write_text(_HANDLER)
    flags = ("--code-dir", str(tmp_path), "--timeout", "1", "--concurrency", "5")
    with running_serve("--debug", *flags, "--env", f"PID_FILE={pid_file}", "app.handler") as serve:
        assert serve.wait_for_errors("debug mode", timeout=10)
        status, headers, body = serve.invoke("function", b'{"sleep": 2.5}')  # over --timeout 1
        assert status == 200 and "x-amz-function-error" not in headers, body
        answer = json.loads(body)
        assert answer["remaining_ms"] > 3_600_000
        time.sleep(0.5)  # a frozen environment is stopped 20 ms after its invocation
        assert not frozen(answer["pid"])
        # Two invocations at once wait for the one environment rather than start another.
        answers: list[bytes] = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(serve.invoke("function", b'{"sleep": 0.3}')[2])
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert {json.loads(body)["pid"] for body in answers} == {answer["pid"]}
        assert pid_file.read_text().split() == [str(answer["pid"])]
        assert not frozen(answer["pid"])


class _DebugAdapter:
    """The editor's side of the Debug Adapter Protocol, as much as attaching takes."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._buffer = b""
        self._seq = 0

    def request(self, command: str, **arguments: object) -> None:
        self._seq += 1
        message = {"seq": self._seq, "type": "request", "command": command, "arguments": arguments}
        body = json.dumps(message).encode()
        self._socket.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def wait(self, key: str, value: str) -> dict[str, Any]:
        """Read messages until one whose ``key`` is ``value`` (a response or an event)."""
        while True:
            while b"\r\n\r\n" not in self._buffer:
                self._buffer += self._socket.recv(65536)
            head, _, rest = self._buffer.partition(b"\r\n\r\n")
            length = int(head.split(b":")[1])
            while len(rest) < length:
                rest += self._socket.recv(65536)
            message: dict[str, Any] = json.loads(rest[:length])
            self._buffer = rest[length:]
            if message.get(key) == value:
                return message

    def close(self) -> None:
        self._socket.close()


def test_debugpy_stops_at_a_breakpoint_for_longer_than_the_timeout(tmp_path: Path) -> None:
    """The recipe of docs/daily-loop.md, with debugpy where it is installed (not a dependency)."""
    pytest.importorskip("debugpy")
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n    answer = {'x': event['x']}\n    return answer\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = [sys.executable, "-m", "debugpy", "--listen", f"127.0.0.1:{port}"]
    flags = ["--debug", "--code-dir", str(tmp_path), "--timeout", "1"]
    flags += ["--env", f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}"]
    with running_serve(*flags, "--", *runtime, "-m", "lambdakit.runtime", "app.handler") as serve:
        assert serve.invoke("function", b'{"x": 1}')[0] == 200  # Init done: debugpy listens
        adapter = _DebugAdapter(port)
        try:
            adapter.request("initialize", adapterID="python", linesStartAt1=True)
            adapter.wait("command", "initialize")
            adapter.request("attach", justMyCode=False)
            adapter.wait("event", "initialized")
            adapter.request(
                "setBreakpoints",
                source={"path": str(tmp_path / "app.py")},
                breakpoints=[{"line": 3}],
            )
            adapter.wait("command", "setBreakpoints")
            adapter.request("configurationDone")
            adapter.wait("command", "configurationDone")
            answers: list[tuple[int, dict[str, str], bytes]] = []
            thread = threading.Thread(
                target=lambda: answers.append(serve.invoke("function", b'{"x": 7}'))
            )
            thread.start()
            stopped = adapter.wait("event", "stopped")
            assert stopped["body"]["reason"] == "breakpoint"
            time.sleep(2)  # a person looking, for longer than --timeout 1
            assert not answers
            adapter.request("continue", threadId=stopped["body"]["threadId"])
            thread.join(30)
        finally:
            adapter.close()
        ((status, headers, body),) = answers
        assert status == 200 and "x-amz-function-error" not in headers
        assert json.loads(body) == {"x": 7}
