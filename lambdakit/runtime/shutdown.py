"""``on_shutdown`` hooks, run on SIGTERM (Lambda's shutdown signal) whatever AWS_EXECUTION_ENV is.

Lambda sends SIGTERM to the runtime when the environment shuts down (if an extension is
registered; the runtime then has 300-500 ms), and SIGKILL after.  The runtime waits for events in
a plain ``recv()`` on the main thread, which Python interrupts to run signal handlers (PEP 475),
so a SIGTERM handler installed by the handler module runs even while idle.  ``on_shutdown``
hooks run first (last registered first, like ``atexit``), then the handler the module installed,
which decides what happens next; without one, the process ends as SIGTERM's default would.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import types
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    P = ParamSpec("P")
    F = TypeVar("F", bound=Callable[..., object])

_hooks: list[tuple[Callable[..., object], tuple[object, ...], dict[str, object]]] = []
#: What was installed for SIGTERM before our handler (called after the hooks).
_previous: object = None


def on_shutdown(
    fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
) -> Callable[P, object]:
    """Run ``fn(*args, **kwargs)`` when the environment shuts down; usable as a decorator."""
    _hooks.append((fn, args, kwargs))
    arm()
    return fn


def arm() -> None:
    """(Re)install the SIGTERM handler if there are hooks and someone replaced it."""
    global _previous
    if not _hooks:
        return
    import signal

    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:
            return  # not the main thread; the runtime arms again after init
        _previous = current


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    import signal

    while _hooks:
        fn, args, kwargs = _hooks.pop()
        try:
            fn(*args, **kwargs)
        except Exception:
            import logging

            logging.getLogger("lambdakit.runtime").exception("on_shutdown hook %r failed", fn)
    if callable(_previous):
        _previous(signum, frame)  # the module's own handler decides what happens next
        return
    if _previous is signal.SIG_IGN:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
