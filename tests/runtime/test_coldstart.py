"""Cold start: what the runtime imports before its first ``GET next``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from lambdakit.wire.http1 import RequestHead
from tests.http_fakes import MessageReader
from tests.runtime.support import make_code_dir

#: Modules the runtime must not import before the first event (each costs milliseconds).
HEAVY = {
    "http.client",
    "json",
    "logging",
    "asyncio",
    "typing",
    "dataclasses",
    "traceback",
    "decimal",
    "inspect",
    "threading",
    "email",
    "ssl",
    "signal",
    "socket",
}


def _imports_before_first_next(code_dir: Path, handler: str) -> set[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(30)
        env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{listener.getsockname()[1]}",
        }
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "lambdakit.runtime", handler],
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                head = MessageReader(conn, server=True).next_event()
                assert isinstance(head, RequestHead), "no request before the connection closed"
                assert head.raw.startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1")
                process.kill()  # everything imported so far is on stderr
        finally:
            process.kill()
            _, stderr = process.communicate(timeout=30)
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_no_heavy_imports_before_first_next(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("def handler(event, context):\n    return 1\n")
    imported = _imports_before_first_next(tmp_path, "hello.handler")
    assert "lambdakit.runtime.bootstrap" in imported
    assert not imported & HEAVY, sorted(imported & HEAVY)


def test_logging_is_configured_when_the_handler_imports_it(tmp_path: Path) -> None:
    code = make_code_dir(tmp_path)
    imported = _imports_before_first_next(code, "app.ok")
    assert {"logging", "lambdakit.runtime.logsetup"} <= imported


def test_import_lambdakit_is_nearly_free() -> None:
    code = (
        "import sys, lambdakit; assert 'lambdakit.runtime' not in sys.modules; "
        "from lambdakit import after_response; "
        "from lambdakit.runtime.tasks import after_response as a; assert after_response is a"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
