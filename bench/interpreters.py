"""serve on another Python interpreter: a venv of it with serve's dependencies, made once.

``bench.serve_ab --base-python PYTHON`` runs the checkout's ``lambdakit`` on ``PYTHON`` beside the
same code on the interpreter running the benchmark, to show what the interpreter's build is worth:
a distribution's python3 (Debian's, built with profile-guided and link-time optimisation and
libpython linked in) against pyenv's default build (neither), say.  The venv lives under
``.cache/bench-python/`` and holds only serve's dependencies from ``pyproject.toml``; the code
comes from the checkout through ``PYTHONPATH``, so both sides run the same source.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from bench.rie import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's venv has tomli on 3.10
    import tomli as tomllib

VENVS = REPO / ".cache" / "bench-python"


def serve_dependencies() -> list[str]:
    """The ``[project] dependencies`` of ``pyproject.toml`` (what ``lambdakit serve`` imports)."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def interpreter_python(python: str) -> Path:
    """The python of a venv of ``python`` that has serve's dependencies (made if needed).

    Raises SystemExit naming the interpreter when it cannot be found or set up.
    """
    found = shutil.which(python)
    if found is None:
        raise SystemExit(f"no interpreter {python!r} (not on PATH, or not executable)")
    executable, version = _identify(found)
    dependencies = serve_dependencies()
    key = hashlib.sha1(f"{executable} {version}\n{dependencies}".encode()).hexdigest()[:12]
    venv = VENVS / key
    marker = venv / ".installed"
    venv_python = venv / "bin" / "python"
    if marker.exists():
        return venv_python
    try:
        subprocess.run([executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv_python), "-m", "pip", "install", "--quiet", *dependencies],
            check=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = f"cannot make a venv of {executable} with serve's dependencies: {exc}"
        raise SystemExit(detail) from exc
    marker.write_text(f"{executable} {version}\n")
    return venv_python


def _identify(python: str) -> tuple[str, str]:
    """``python``'s real executable and version (``/usr/bin/python3.11``, ``3.11.2``): a pyenv
    shim or an upgrade behind the same path is another interpreter.  SystemExit if it is older
    than 3.10, which serve needs, or does not run."""
    code = (
        "import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0]); "
        "sys.exit(sys.version_info < (3, 10))"
    )
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"cannot run {python}: {exc}") from exc
    executable, _, version = done.stdout.strip().rpartition(" ")
    if done.returncode != 0 or not executable:
        shown = done.stdout.strip() or done.stderr.strip()[-200:]
        raise SystemExit(f"{python} is not Python 3.10 or newer ({shown})")
    return executable, version
