"""A handler module with its own SIGTERM handler and an on_shutdown hook (writes marker files)."""

import os
import signal
import sys

from lambdakit.runtime import on_shutdown

MARKERS = os.environ["MARKER_DIR"]


def _write(name: str) -> None:
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


@on_shutdown
def hook():
    _write("hook")


def _sigterm(signum, frame):
    _write("module-handler")
    sys.exit(0)


signal.signal(signal.SIGTERM, _sigterm)


def handler(event, context):
    return {"pid": os.getpid()}
