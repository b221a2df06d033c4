"""Python external extensions built on lambdakit.extensions.Extension, run by lambdakit serve
from an extensions directory as two-line executables."""

from __future__ import annotations

import json
import re
from contextlib import AbstractContextManager
from pathlib import Path

from tests.extensions.support import PYEXT, python_extension
from tests.serving import Serve, bash_function, process_alive, running_serve


def _serve_with(extensions: Path, *extra: str) -> AbstractContextManager[Serve]:
    return running_serve(
        *bash_function(
            "--function-name",
            "ext",
            "--concurrency",
            "1",
            "--extensions-dir",
            str(extensions),
            "--env",
            f"PYTHONPATH={PYEXT}",
            *extra,
        )
    )


def _pids(serve_output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"\[audit\] pid (\d+)", serve_output)]


def test_a_python_extension_gets_invoke_for_each_invocation_and_shutdown_at_stop(
    tmp_path: Path,
) -> None:
    python_extension(tmp_path, "audit", f"{PYEXT / 'audit.py'}:Audit", style="shebang")
    python_extension(tmp_path, "hooks-ext", "audit:hooks", style="exec")
    with _serve_with(tmp_path) as serve:
        ids = [serve.invoke("ext")[1]["x-amzn-requestid"] for _ in range(3)]
        assert serve.wait_for_output(r"^REPORT", count=3, timeout=15)
        serve.stop()
    output = serve.output()
    # Registered under the executables' file names: serve treats them as external.
    assert "[audit] registered as audit for ext" in output
    for prefix in ("[audit] invoke", "[hooks] invoke"):
        seen = re.findall(re.escape(prefix) + r" ([0-9a-f-]+)", output)
        assert seen == ids, (prefix, output)
    assert "[audit] invoke " + ids[0] + " remaining>0=True" in output
    assert "[audit] shutdown spindown" in output
    assert "[hooks] shutdown spindown" in output
    assert "lambdakit extension:" not in output  # no error on the way out


def test_an_init_failure_is_reported_and_fails_the_invocation(tmp_path: Path) -> None:
    python_extension(tmp_path, "broken", f"{PYEXT / 'audit.py'}:Broken")
    with _serve_with(tmp_path) as serve:
        status, headers, body = serve.invoke("ext")
        # The log stream is written in batches: wait for the line rather than race it.
        reported = serve.wait_for_output("Extension broken reported Extension.ConfigInvalid")
        output = serve.output()
    error = json.loads(body)
    assert headers.get("x-amz-function-error") == "Unhandled", (status, body, output)
    assert error["errorType"] == "Extension.ConfigInvalid"
    assert error["errorMessage"] == "AUDIT_TABLE is not set"
    assert reported, output


def test_an_invoke_hook_that_raises_reports_exit_error_and_resets(tmp_path: Path) -> None:
    python_extension(tmp_path, "flaky", f"{PYEXT / 'audit.py'}:Flaky")
    with _serve_with(tmp_path) as serve:
        first = serve.invoke("ext")
        second = serve.invoke("ext")  # a fresh environment (the failed one was reset)
        assert serve.wait_for_output(r"Extension flaky reported Extension.ExitError", timeout=15)
        assert serve.wait_for_output(r"\[flaky\] invoke", count=2, timeout=15)
    assert first[0] == second[0] == 200
    for _, headers, body in (first, second):
        if "x-amz-function-error" in headers:  # the extension failed before the response
            assert json.loads(body)["errorType"] == "Extension.ExitError"
    assert "RuntimeError: flaky hook" in serve.output()


def test_the_extension_process_is_reaped(tmp_path: Path) -> None:
    python_extension(tmp_path, "audit", f"{PYEXT / 'audit.py'}:Audit")
    with _serve_with(tmp_path) as serve:
        serve.invoke("ext")
        assert serve.wait_for_output(r"\[audit\] pid \d+", timeout=15)
    pids = _pids(serve.output())
    assert pids and not any(process_alive(pid) for pid in pids)
