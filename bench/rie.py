"""AWS's Runtime Interface Emulator (RIE), fetched from the aws-sam-cli wheel on PyPI.

The binary is never committed: it lives in ``<repo>/.cache/aws-lambda-rie-<arch>`` (gitignored) and
is fetched on first use with ``pip download --no-deps aws-sam-cli``.
"""

from __future__ import annotations

import os
import platform
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".cache"
PIP_TIMEOUT_S = 300.0

_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def rie_arch() -> str:
    """The RIE flavour for this machine: ``x86_64`` or ``arm64``."""
    machine = platform.machine().lower()
    try:
        return _ARCHES[machine]
    except KeyError:
        raise RuntimeError(f"no RIE binary for machine type {machine!r}") from None


def rie_path() -> Path:
    """Where the RIE binary is cached (it may not exist yet)."""
    return CACHE_DIR / f"aws-lambda-rie-{rie_arch()}"


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        "aws-sam-cli",
    ]
    subprocess.run(cmd, check=True, timeout=PIP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    wheels = sorted(dest.glob("aws_sam_cli-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download left no aws_sam_cli wheel in {dest}")
    return wheels[-1]


def _extract(wheel: Path, member: str, target: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise RuntimeError(f"{wheel.name} has no {member}") from None
        partial = target.with_name(target.name + ".part")
        with zf.open(info) as src, partial.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    mode = partial.stat().st_mode
    partial.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(partial, target)


def ensure_rie() -> Path:
    """Return the path of an executable RIE binary, fetching it first if absent."""
    target = rie_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    member = f"samcli/local/rapid/aws-lambda-rie-{rie_arch()}"
    with tempfile.TemporaryDirectory(prefix="lambdakit-rie-") as tmp:
        wheel = _download_wheel(Path(tmp))
        print(f"extracting {member} from {wheel.name}", file=sys.stderr)
        _extract(wheel, member, target)
        version = wheel.name.split("-")[1]
        (CACHE_DIR / "aws-lambda-rie.version").write_text(f"aws-sam-cli {version}\n")
    return target


def sam_cli_version() -> str | None:
    """The aws-sam-cli version the cached binary came from, if recorded."""
    marker = CACHE_DIR / "aws-lambda-rie.version"
    try:
        return marker.read_text().strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    print(ensure_rie())
