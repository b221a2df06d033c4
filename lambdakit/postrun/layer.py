"""``lambdakit layer build [--output ZIP]``: the post-runner as a Lambda layer zip.

Lambda unpacks a layer into ``/opt`` (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html).
The zip holds::

    entry.sh                                  -> /opt/entry.sh (AWS_LAMBDA_EXEC_WRAPPER)
    lambdakit-post-run/launch.py              checks the Python version, then starts the post-runner
    lambdakit-post-run/lambdakit/__init__.py
    lambdakit-post-run/lambdakit/wire/*.py    the Runtime API's names
    lambdakit-post-run/lambdakit/proxy/*.py   the proxy library
    lambdakit-post-run/lambdakit/postrun/*.py the post-runner (this builder left out)

Pure Python, stdlib only, no compiled code: the same zip serves x86_64 and arm64.  The zip is
reproducible (sorted entries, fixed timestamps), so rebuilding unchanged sources gives the same
bytes.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # .../lambdakit
SOURCE = PACKAGE.parent  # the checkout: lambdakit/ and layer/
LAYER_DIR = "lambdakit-post-run"
DEFAULT_OUTPUT = "dist/lambdakit-post-runner-layer.zip"
_SUBPACKAGES = ("wire", "proxy", "postrun")
_LEFT_OUT = {"postrun/layer.py"}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _layer_sources() -> Path:
    """``layer/`` of a source checkout, else where a wheel install put it (data files)."""
    for candidate in (SOURCE / "layer", Path(sys.prefix) / "share" / "lambdakit" / "layer"):
        if (candidate / "entry.sh").is_file():
            return candidate
    return SOURCE / "layer"


def layer_files() -> Iterator[tuple[str, Path, int]]:
    """(name in the zip, source file, Unix mode) for everything the layer holds."""
    layer_sources = _layer_sources()
    yield "entry.sh", layer_sources / "entry.sh", 0o755
    yield f"{LAYER_DIR}/launch.py", layer_sources / "launch.py", 0o644
    yield f"{LAYER_DIR}/lambdakit/__init__.py", PACKAGE / "__init__.py", 0o644
    for sub in _SUBPACKAGES:
        for path in sorted((PACKAGE / sub).glob("*.py")):
            relative = f"{sub}/{path.name}"
            if relative not in _LEFT_OUT:
                yield f"{LAYER_DIR}/lambdakit/{relative}", path, 0o644


def build(output: Path) -> int:
    """Write the layer zip to ``output``; return the number of files in it."""
    files = list(layer_files())
    missing = [str(source) for _, source, _ in files if not source.is_file()]
    if missing:
        raise FileNotFoundError(
            f"not found: {', '.join(missing)} (reinstall lambdakit, or build the layer from a "
            "source checkout)"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source, mode in sorted(files):
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return len(files)


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lambdakit layer",
        description="Build the post-runner's Lambda layer (entry.sh for AWS_LAMBDA_EXEC_WRAPPER).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    build_parser = sub.add_parser("build", help="write the layer zip")
    build_parser.add_argument(
        "--output", "-o", default=DEFAULT_OUTPUT, help=f"where (default {DEFAULT_OUTPUT})"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has said why
        return int(exc.code or 0)
    output = Path(args.output)
    try:
        count = build(output)
    except (OSError, FileNotFoundError) as exc:
        sys.stderr.write(f"lambdakit layer: error: {exc}\n")
        return 1
    sys.stdout.write(
        f"wrote {output} ({count} files, {output.stat().st_size} bytes): upload it as a layer "
        "and set AWS_LAMBDA_EXEC_WRAPPER=/opt/entry.sh\n"
    )
    return 0
