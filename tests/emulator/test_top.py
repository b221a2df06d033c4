"""``lambdakit top``: against a real ``lambdakit serve``, and with nobody listening."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

from lambdakit import top_command
from tests.serving import REPO, running_serve

CONFIG = REPO / "tests" / "fixtures" / "functions" / "live" / "lambdakit.toml"


def top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdakit", "top", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


def test_top_once_prints_the_figures() -> None:
    with running_serve("--config", str(CONFIG)) as serve:
        for n in range(2):
            status, _, _ = serve.invoke("checkout", json.dumps({"n": n, "after": 0.1}).encode())
            assert status == 200
        status, headers, _ = serve.invoke("thumbnails", b'{"n": 0}')
        assert headers.get("x-amz-function-error") == "Unhandled"
        assert serve.wait_for_output(r"REPORT RequestId", count=3)
        result = top("--once", "--url", serve.url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "\x1b[" not in out  # plain text
    assert re.search(r"^checkout  environments: .*invocations 2  errors 0  throttles 0", out, re.M)
    assert re.search(r"^thumbnails  environments: .*invocations 1  errors 1", out, re.M)
    assert re.search(r"^reports  environments: none   invocations 0", out, re.M)
    after = re.search(r"after response  p50 +([0-9.]+)ms", out)
    assert after is not None and 90 <= float(after.group(1)) <= 200, out
    assert re.search(r"thumbnails#1 +error .*ValueError$", out, re.M), out


def test_top_without_a_serve_says_so_in_one_line() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = top("--once", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"lambdakit top: no lambdakit serve at http://127.0.0.1:{port} (connection refused)\n"
    )


def test_top_usage_errors() -> None:
    result = top("--url", "ftp://x")
    assert result.returncode == 2
    assert result.stderr.startswith("lambdakit top: error: --url:")
    result = top("--interval", "0")
    assert result.returncode == 2 and "--interval" in result.stderr


def test_percentiles_and_phases() -> None:
    assert top_command.percentile([], 0.5) is None
    assert top_command.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert top_command.percentile([float(n) for n in range(1, 101)], 0.99) == 99.0
    inv = {"started": 10.0, "responded": 10.25, "ended": 10.75}
    assert top_command.phases(inv) == (250.0, 500.0)
    assert top_command.phases({"started": 10.0, "responded": None, "ended": 11.0}) == (None, None)
