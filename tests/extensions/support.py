"""Helpers for the lambdakit.extensions tests: serve a handler of ./functions under a runtime."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.serving import REPO, Serve, running_serve

HERE = Path(__file__).resolve().parent
FUNCTIONS = HERE / "functions"
PYEXT = HERE / "pyext"
INTERNAL_EXTENSION_EXAMPLE = REPO / "examples" / "internal-extension"
FUNCTION = "f"
#: The Python runtime clients the library must work under.
RUNTIMES = {
    "awslambdaric": [sys.executable, "-m", "awslambdaric"],
    "lambdakit": [sys.executable, "-m", "lambdakit.runtime"],
}


@contextlib.contextmanager
def serve_python(
    handler: str, runtime: str, *extra: str, code_dir: Path = FUNCTIONS
) -> Iterator[Serve]:
    """``lambdakit serve`` running ``handler`` from ``code_dir`` under ``runtime`` (name ``f``)."""
    args = ["--function-name", FUNCTION, "--code-dir", str(code_dir), *extra]
    with running_serve(*args, "--", *RUNTIMES[runtime], handler) as serve:
        yield serve


def invoke_json(serve: Serve, payload: object) -> tuple[int, dict[str, str], Any]:
    status, headers, body = serve.invoke(FUNCTION, json.dumps(payload).encode())
    return status, headers, json.loads(body)


def stamp(output: str, label: str) -> float:
    """The time printed on the line ``<label> <epoch seconds>``."""
    found = re.findall(re.escape(label) + r" ([0-9.]+)", output)
    assert len(found) == 1, (label, output)
    return float(found[0])


def durations(output: str) -> list[float]:
    """REPORT Duration (ms) of each invocation, in order."""
    return [float(d) for d in re.findall(r"^REPORT .*?\tDuration: ([0-9.]+) ms", output, re.M)]


def python_extension(directory: Path, name: str, target: str, style: str = "shebang") -> Path:
    """An executable ``name`` in ``directory`` that runs ``target`` with this interpreter."""
    path = directory / name
    if style == "shebang":
        text = f"#!/usr/bin/env -S {sys.executable} -m lambdakit.extensions run {target}\n"
    else:
        text = f'#!/bin/sh\nexec {sys.executable} -m lambdakit extension run {target} "$0"\n'
    path.write_text(text)
    path.chmod(0o755)
    return path
