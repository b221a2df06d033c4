"""``background_task``: work that starts during the handler and may outlive the response.

The work starts at once on its own thread, so it overlaps the rest of the handler; the response
goes out when the handler returns; the environment is held (not frozen, and billed, as Lambda
does) until the work ends, because the invocation's tasks include one that waits for the thread.
That task list is ``after_response``'s: under lambdakit.runtime the runtime runs it between
``/response`` and ``next``; under awslambdaric the internal extension of
:mod:`lambdakit.extensions.internal` runs it before its own ``next``.  Either way the next
invocation of this environment starts only after the work is done.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Callable
from typing import ParamSpec

from lambdakit.runtime.scope import SCOPE, Task
from lambdakit.runtime.tasks import current_deadline

logger = logging.getLogger("lambdakit.extensions")

P = ParamSpec("P")


class BackgroundTask:
    """One ``background_task`` call: its thread, and the wait for it (queued as a task)."""

    def __init__(
        self, fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._name = getattr(fn, "__qualname__", repr(fn))
        self._thread = threading.Thread(
            target=self._run, name=f"background {self._name}", daemon=True
        )
        self._started = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._started.set()

    def _run(self) -> None:
        try:
            result = self._fn(*self._args, **self._kwargs)
            if isinstance(result, types.CoroutineType):
                import asyncio

                asyncio.run(result)
        except Exception:
            logger.exception("background task %s failed", self._name)

    def __call__(self) -> None:
        """Wait for the thread until the invocation's deadline (the queued task's body)."""
        deadline = current_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        self._started.wait(timeout)  # queued just before it starts, under an extension
        if deadline is not None:
            timeout = max(0.0, deadline - time.time())
        if self._started.is_set():
            self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error(
                "background task %s still running at the invocation deadline; the environment "
                "is no longer held for it",
                self._name,
            )

    def __repr__(self) -> str:
        return f"<background task {self._name}>"


def background_task(fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Start ``fn(*args, **kwargs)`` now on a thread; hold the environment until it returns.

    Call it during an invocation (in the handler, or in a task of the invocation).  ``fn`` may
    be a coroutine function (its coroutine runs on the thread's own event loop).  Exceptions are
    logged.  Under awslambdaric, ``lambdakit.extensions`` must have been imported while the
    handler module was loaded (at its top): see docs/extensions.md.
    """
    task = BackgroundTask(fn, args, kwargs)
    if SCOPE.request_id:  # lambdakit.runtime, during an invocation: it runs the waiting task
        task.start()
        SCOPE.tasks.append(Task(task, (), {}))
        return
    if SCOPE.serving:
        raise RuntimeError(
            "background_task() must be called during an invocation (in the handler, or in a "
            "task of the invocation)"
        )
    from lambdakit.extensions import internal

    # Queue the wait first: if the work cannot be held, it must not start either.
    internal.queue_task(Task(task, (), {}), "background_task()")
    task.start()
