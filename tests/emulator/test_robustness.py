"""Hostile or broken peers: huge output lines, slow stream readers, truncated bodies, bad HTTP."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

from tests.serving import REPO, bash_function, lambda_client, running_serve

STREAMING = REPO / "tests" / "fixtures" / "runtimes" / "streaming"
NOISY = REPO / "tests" / "fixtures" / "functions" / "noisy"


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_20_mb_line_without_newline_neither_stalls_the_service_nor_the_log() -> None:
    with running_serve(
        "--function-name", "noisy", "--code-dir", str(NOISY), "--timeout", "30"
    ) as serve:
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(serve.invoke("noisy")[0]))
        thread.start()
        worst = 0.0
        while thread.is_alive():
            started = time.monotonic()
            conn = serve.connection(timeout=30)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.01)
        thread.join()
        assert serve.wait_for_output(r"^noise done$")
        long_lines = [len(line) for line in serve.output().splitlines() if line.startswith("yyy")]
    assert result == [200]
    assert worst < 1.0  # the service kept answering while it read the output
    assert max(long_lines) <= 256 * 1024  # cut as CloudWatch cuts
    assert sum(long_lines) == 20 * 1024 * 1024


def test_a_slow_stream_reader_pauses_the_runtime_and_streams_stop_at_200_mb() -> None:
    with running_serve(
        "--function-name", "stream", "--code-dir", str(STREAMING), "--timeout", "60"
    ) as serve:
        pid = serve.process.pid
        before = _rss_mb(pid)
        sock = socket.create_connection((serve.host, serve.port))
        body = json.dumps({"flood_mb": 210}).encode()
        sock.sendall(
            b"POST /2021-11-15/functions/stream/response-streaming-invocations HTTP/1.1\r\n"
            b"Host: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        time.sleep(3)  # the caller reads nothing meanwhile
        during = _rss_mb(pid)
        received, tail = 0, b""
        sock.settimeout(30)
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(1 << 20)
            assert data, "the stream ended without its last chunk"
            received += len(data)
            tail = (tail + data)[-4096:]
        sock.close()
    assert during - before < 100, (before, during)  # 210 MB did not pile up in the service
    assert 200 * 1024 * 1024 < received < 201 * 1024 * 1024  # the 200 MB limit, then the end
    assert b"InvokeComplete" in tail and b"Function.ResponseSizeTooLarge" in tail


def test_a_truncated_streamed_response_is_reported_at_once(tmp_path: Path) -> None:
    with running_serve(
        "--function-name", "stream", "--code-dir", str(STREAMING), "--timeout", "20"
    ) as serve:
        started = time.monotonic()
        response = lambda_client(serve).invoke_with_response_stream(
            FunctionName="stream", Payload=json.dumps({"chunks": ["a"], "truncate": True}).encode()
        )
        events = list(response["EventStream"])
        elapsed = time.monotonic() - started
        plain = serve.invoke("stream", json.dumps({"chunks": ["b"], "truncate": True}).encode())
    assert events[-1]["InvokeComplete"]["ErrorCode"] == "Runtime.TruncatedResponse"
    assert elapsed < 5  # not the 20 s timeout
    assert json.loads(plain[2])["errorType"] == "Runtime.TruncatedResponse"


def test_connection_close_is_honoured() -> None:
    with running_serve(*bash_function()) as serve:
        sock = socket.create_connection((serve.host, serve.port))
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in data  # and the server closed: recv() returned b""


def test_oversized_request_headers_get_431() -> None:
    with running_serve(*bash_function()) as serve:
        sock = socket.create_connection((serve.host, serve.port))
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        data = sock.recv(65536)
        sock.close()
    assert data.startswith(b"HTTP/1.1 431")


def test_a_vanished_extensions_directory_fails_init_clearly(tmp_path: Path) -> None:
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    with running_serve(*bash_function("--extensions-dir", str(extensions))) as serve:
        shutil.rmtree(extensions)
        status, headers, body = serve.invoke("function")
        started = time.monotonic()
        serve.stop()
        stop_took = time.monotonic() - started
    assert (status, headers["x-amz-function-error"]) == (200, "Unhandled")
    assert json.loads(body)["errorType"] == "Extension.LaunchError"
    assert stop_took < 5


def test_log_level_is_read_from_the_flags_not_the_runtimes_arguments() -> None:
    bootstrap = str(REPO / "tests" / "fixtures" / "runtimes" / "bash" / "bootstrap")
    with running_serve(
        "--log-level=debug", *bash_function(), "--", bootstrap, "--log-level", "trace"
    ) as serve:
        status, _, _ = serve.invoke("function")
    assert status == 200  # the runtime's own "--log-level trace" did not reach lambdakit
    assert "lambdakit DEBUG lambdakit.sandbox" in serve.errors()  # "--log-level=debug" did
