"""Layers without ``/opt``: each layer directory stands where Lambda would extract it.

Theory of operation
-------------------
Lambda extracts a function's layers into ``/opt`` in the function's order, a later layer's file
replacing an earlier one's at the same path, and points the runtime at the usual places
(https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html#packaging-layers-paths):
``/opt/python`` and ``/opt/python/lib/pythonX.Y/site-packages`` on the Python path,
``/opt/bin`` at the end of ``PATH``, ``/opt/lib`` on ``LD_LIBRARY_PATH``, and every executable of
``/opt/extensions`` started as an external extension
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-extensions.html).

Here nothing is copied and nothing needs root: each layer directory is left where it is and the
search paths list every layer's directory instead of the one merged ``/opt``, the later layer
first, so that the file a lookup finds is the one the merge would have kept.  Extensions are
merged by name (a later layer's wins) and started in name order.  What this cannot give is the
literal path: code that opens ``/opt/...`` finds nothing; ``LAMBDAKIT_LAYERS`` lists the layer
directories for code that must find a file in them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

#: The layer directories of the function, in its order (``os.pathsep``-separated).
LAYERS_VARIABLE = "LAMBDAKIT_LAYERS"


def _existing(paths: Iterable[Path]) -> list[str]:
    return [str(path) for path in paths if path.is_dir()]


def layer_environment(
    layers: Sequence[Path],
    base: Mapping[str, str],
    python: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
) -> dict[str, str]:
    """The variables that put ``layers`` where ``/opt`` would put them, over ``base``'s.

    ``python`` is the version of the Python the runtime runs (its ``site-packages`` directory).
    """
    if not layers:
        return {}
    latest_first = list(reversed(layers))
    version = f"python{python[0]}.{python[1]}"
    env = {LAYERS_VARIABLE: os.pathsep.join(str(layer) for layer in layers)}
    python_path = _existing(
        layer / "python" / "lib" / version / "site-packages" for layer in latest_first
    )
    python_path += _existing(layer / "python" for layer in latest_first)
    if python_path:
        env["PYTHONPATH"] = _joined(python_path, base.get("PYTHONPATH", ""))
    bins = _existing(layer / "bin" for layer in latest_first)
    if bins:
        # Lambda's PATH ends with /opt/bin: the system's programs come first.
        env["PATH"] = _joined([base.get("PATH", os.defpath)], *bins)
    libs = _existing(layer / "lib" for layer in latest_first)
    if libs:
        env["LD_LIBRARY_PATH"] = _joined([base.get("LD_LIBRARY_PATH", "")], *libs)
    return env


def _joined(first: Sequence[str], *rest: str) -> str:
    return os.pathsep.join(part for part in (*first, *rest) if part)


def extension_directories(layers: Sequence[Path], own: Path | None) -> list[Path]:
    """Where the external extensions are, in merge order: each layer's ``extensions`` that
    exists, then the function's own extensions directory (always: it must exist)."""
    found = [layer / "extensions" for layer in layers if (layer / "extensions").is_dir()]
    return [*found, own] if own is not None else found
