"""examples/extensions/ does what docs/extensions.md says, under both Python runtime clients."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.extensions.support import RUNTIMES
from tests.serving import REPO, running_serve

EXAMPLE = REPO / "examples" / "extensions"


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_the_extensions_example(runtime: str) -> None:
    # ``python3`` in the extension's shebang line must be this interpreter (lambdakit installed).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    args = ["--function-name", "orders", "--code-dir", str(EXAMPLE), "--concurrency", "1"]
    args += ["--extensions-dir", str(EXAMPLE / "extensions")]
    with running_serve(*args, "--", *RUNTIMES[runtime], "app.handler", env={"PATH": path}) as serve:
        serve.invoke("orders", b'{"order": "o-1"}')  # Init out of the way
        assert serve.wait_for_output(r"^REPORT", timeout=15)
        started = time.monotonic()
        status, _, body = serve.invoke("orders", b'{"order": "o-2"}')
        answered = time.monotonic() - started
        assert serve.wait_for_output(r"^REPORT", count=2, timeout=15)
        serve.stop()
    output = serve.output()
    assert status == 200 and body == b'{"accepted": "o-2"}'
    assert answered < 0.5
    assert re.search(r"stored o-2", output) and re.search(r"metrics flushed for o-2", output)
    assert len(re.findall(r"\[audit\] invoke ", output)) == 2
    billed = [int(ms) for ms in re.findall(r"\[audit\] \S+ billed (\d+) ms", output)]
    assert len(billed) == 2 and all(ms >= 950 for ms in billed), output
    assert "[audit] shutdown (spindown)" in output
