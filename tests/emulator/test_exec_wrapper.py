"""AWS_LAMBDA_EXEC_WRAPPER for Python handlers, as Lambda's managed runtimes honour it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.serving import REPO, running_serve

CONTEXT = REPO / "tests" / "fixtures" / "functions" / "context"


def test_the_wrapper_gets_the_runtimes_command_line_and_runs_it(tmp_path: Path) -> None:
    args_file = tmp_path / "args"
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {args_file}\nexport WRAPPED=yes\nexec "$@"\n'
    )
    wrapper.chmod(0o755)
    with running_serve(
        "--function-name",
        "wrapped",
        "--code-dir",
        str(CONTEXT),
        "--env",
        f"AWS_LAMBDA_EXEC_WRAPPER={wrapper}",
        "ctx.handler",
    ) as serve:
        status, _, body = serve.invoke("wrapped")
    assert status == 200
    assert json.loads(body) == {"client_context": None}
    assert args_file.read_text().splitlines() == [
        sys.executable,
        "-m",
        "lambdakit.runtime",
        "ctx.handler",
    ]


def test_a_missing_wrapper_is_reported_at_start(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdakit",
            "serve",
            "--code-dir",
            str(CONTEXT),
            "--env",
            f"AWS_LAMBDA_EXEC_WRAPPER={tmp_path / 'missing.sh'}",
            "ctx.handler",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "AWS_LAMBDA_EXEC_WRAPPER" in result.stderr and "missing.sh" in result.stderr
