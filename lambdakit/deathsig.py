"""Children that die with their parent: ``PR_SET_PDEATHSIG`` (Linux), stdlib only.

A process killed with SIGKILL cannot stop its children.  Passed as ``preexec_fn``,
:func:`die_with_parent` makes the kernel send SIGKILL to the child when the thread that started
it exits, so a killed ``lambdakit serve`` or post-runner leaves no runtime or command behind.
Elsewhere (macOS) it does nothing.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


#: ``prctl(2)``, or None where there is none.
prctl = _load_prctl()


def die_with_parent() -> None:
    """In the child, before exec: be killed when the parent (thread) is gone."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def terminated_with_parent() -> None:
    """In the child, before exec: be sent SIGTERM (a graceful stop) when the parent (thread) is
    gone; for a process that must clean up after itself, as a ``lambdakit serve`` started by a
    test run or a benchmark does."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
