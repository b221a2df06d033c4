"""An on_shutdown hook and no SIGTERM handler of its own."""

import os

from lambdakit.runtime import on_shutdown

MARKERS = os.environ["MARKER_DIR"]


def _hook(name: str) -> None:
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


on_shutdown(_hook, "hook-only")


def handler(event, context):
    return {"pid": os.getpid()}
