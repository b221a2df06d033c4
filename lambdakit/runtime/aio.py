"""One event loop for the life of the process, created on first use (uvloop when installed).

``asyncio.run()`` per invocation closes the loop each time, which breaks clients created by
earlier invocations (connection pools bound to the old loop).  The runtime instead keeps a
single loop and drives each coroutine to completion on it, so anything created on the loop by one
invocation is still usable by the next.  asyncio (about 30 ms of imports) is loaded only when a
handler or an after-response task is actually a coroutine.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine

_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The process's event loop, created (and set as current) on the first call."""
    global _loop
    if _loop is None or _loop.is_closed():
        import asyncio

        _loop = _current_loop(asyncio.get_event_loop_policy())
        if _loop is None:
            _loop = _new_loop()
            asyncio.set_event_loop(_loop)
    return _loop


def _current_loop(policy: asyncio.AbstractEventLoopPolicy) -> asyncio.AbstractEventLoop | None:
    """A loop the handler's module set as current (``set_event_loop``), to share, not replace.

    Read from the policy's thread-local: ``asyncio.get_event_loop()`` would warn, or make one.
    """
    local = getattr(policy, "_local", None)
    current: asyncio.AbstractEventLoop | None = getattr(local, "_loop", None)
    if current is None or current.is_closed() or current.is_running():
        return None
    return current


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()
    new: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return new


def run(coro: Coroutine[object, object, object], timeout: float | None = None) -> object:
    """Run ``coro`` to completion on the shared loop (cancelled after ``timeout`` seconds)."""
    if timeout is None:
        return loop().run_until_complete(coro)
    import asyncio

    return loop().run_until_complete(asyncio.wait_for(coro, timeout))
