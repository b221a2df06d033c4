"""examples/streaming runs as documented."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "streaming"


def test_countdown_through_the_example_client() -> None:
    args = ["--code-dir", str(EXAMPLE), "--function-name", "countdown", "app.countdown"]
    with running_serve(*args) as serve:
        client = (EXAMPLE / "client.py").read_text().replace("http://127.0.0.1:8080", serve.url)
        out = subprocess.run(
            [sys.executable, "-c", client, "countdown", json.dumps({"from": 2})],
            capture_output=True,
            check=True,
            timeout=60,
        )
    assert out.stdout == b"2...\n1...\nliftoff\n"


def test_report_through_plain_invoke() -> None:
    args = ["--code-dir", str(EXAMPLE), "--function-name", "report", "app.report"]
    with running_serve(*args) as serve:
        status, _, body = serve.invoke("report", b'{"rows": 3}')
    assert status == 200
    assert body == b"id,square\n0,0\n1,1\n2,4\n"
