"""What the benchmarks ran on, recorded next to their figures."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.rie import REPO, rie_path, sam_cli_version


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "lambdakit"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return commit + ("+uncommitted changes" if dirty.stdout.strip() else "")


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _lambdakit_version() -> str | None:
    return package_version("lambdakit")


def pyc_is_fresh(source: Path | str) -> bool:
    """Whether the interpreter would load ``source``'s __pycache__ .pyc instead of compiling it.

    A timestamp-based .pyc is fresh when its header records the source's mtime and size; a
    hash-based one is taken as fresh.
    """
    try:
        with open(importlib.util.cache_from_source(str(source)), "rb") as pyc:
            header = pyc.read(16)
        st = os.stat(source)
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags, mtime, size = struct.unpack("<III", header[4:16])
    fresh: bool = flags != 0 or (
        mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF
    )
    return fresh


def stale_bytecode(root: Path) -> list[str]:
    """Sources under ``root`` whose .pyc is missing or out of date (see ``pyc_is_fresh``)."""
    stale = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            source = os.path.join(dirpath, name)
            if name.endswith(".py") and not pyc_is_fresh(source):
                stale.append(source)
    return stale


def python_executable() -> str:
    """The interpreter behind this venv, its symlinks resolved (``/usr/bin/python3.11``)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def machine_info() -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        # Which build: a distribution's (PGO and LTO) and pyenv's default differ by 10-20% in
        # serve's CPU per invocation (bench/serve_ab.py --base-python).
        "python_executable": python_executable(),
        "python_implementation": platform.python_implementation(),
        "lambdakit_version": _lambdakit_version(),
        "git_commit": _git_commit(),
        "rie": {
            "source": sam_cli_version() or "aws-sam-cli (version not recorded)",
            "binary": rie_path().name,
            "sha256": _sha256(rie_path()),
            "note": "RIE prints no version: it has no --version flag",
        },
        "argv": sys.argv,
    }
