"""``after_response``: work that runs after the response is sent, before the next event.

The runtime posts the handler's response (so the caller has it), then runs the tasks queued by
the invocation, in order, and only then asks the Runtime API for the next event.  Lambda keeps
the environment thawed, and bills, until that next request, and still enforces the function's
timeout, so the tasks share the invocation's deadline:

- a task that raises is logged (with the request id) and the next task runs;
- a task still running at the deadline (less ``DEADLINE_MARGIN_S``) is cut off (a plain function
  is interrupted by SIGALRM with ``TaskCutOff``, a coroutine is cancelled), it is logged, and the
  tasks after it are dropped;
- ``lambdakit.runtime.current_context()`` still returns the invocation's context, so a task can
  read ``get_remaining_time_in_millis()``.

Under another runtime client (awslambdaric, the managed Python runtime) the same tasks are run
by ``lambdakit.extensions.internal``: an internal extension, registered while the handler module
is imported, that runs them once the runtime has posted the response and only then calls its own
``next``, which keeps the environment thawed the same way (see docs/extensions.md).  This module
does not know it: importing ``lambdakit.extensions`` (which ``from lambdakit import
after_response`` does outside lambdakit.runtime) hands it a queue through
:func:`register_task_queue`.
"""

from __future__ import annotations

import time
import types

from lambdakit.runtime.errors import is_user_error
from lambdakit.runtime.scope import SCOPE, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import ParamSpec

    from lambdakit.runtime.context import LambdaContext

    P = ParamSpec("P")

_LOGGER = "lambdakit.runtime"
#: Tasks are cut off this long before the deadline, so that the runtime is back in ``GET next``
#: when the platform's timer fires (Lambda resets an environment that is still busy then).
DEADLINE_MARGIN_S = 0.05


class TaskCutOff(BaseException):
    """Raised inside an after-response task that is still running at the invocation's deadline.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in the task does not
    swallow it.
    """


#: The deadline (epoch seconds, less the margin) of the tasks being run, for tasks that wait.
_deadline: float | None = None
#: Who takes tasks outside lambdakit.runtime (see :func:`register_task_queue`).
_queue_elsewhere: Callable[[Task, str], None] | None = None


def after_response(fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Run ``fn(*args, **kwargs)`` (a function or coroutine function) after the response is sent.

    Call it during an invocation (in the handler, or in another after-response task).
    """
    if SCOPE.request_id:
        SCOPE.tasks.append(Task(fn, args, kwargs))
        return
    if SCOPE.serving:
        raise RuntimeError(
            "after_response() must be called during an invocation (in the handler or in "
            "another after-response task)"
        )
    # Not served by lambdakit.runtime: whoever registered runs it (or says why it cannot).
    queue = _queue_elsewhere
    if queue is None:
        raise RuntimeError(
            "after_response() must be called during an invocation, in a handler served by "
            "lambdakit.runtime or, under another runtime client (awslambdaric), by a handler "
            "module that imports lambdakit.extensions (or lambdakit.after_response) at its top"
        )
    queue(Task(fn, args, kwargs), "after_response()")


def register_task_queue(queue: Callable[[Task, str], None]) -> None:
    """Register who takes ``after_response`` tasks when lambdakit.runtime does not serve this
    process: ``queue(task, "after_response()")`` queues the task for the invocation in progress
    or raises RuntimeError saying why it cannot.  lambdakit.extensions registers its internal
    extension when it is imported; the last registration wins."""
    global _queue_elsewhere
    _queue_elsewhere = queue


def current_context() -> LambdaContext | None:
    """The context of the invocation being served (also during its after-response tasks)."""
    return SCOPE.context


def current_trace_id() -> str | None:
    """The X-Ray trace header of the invocation being served (``Lambda-Runtime-Trace-Id``).

    Unlike ``os.environ["_X_AMZN_TRACE_ID"]``, which is process-wide and is not set per
    invocation when Managed Instances mode runs invocations in threads or on one event loop,
    this is always the current invocation's.
    """
    return SCOPE.trace_id


def current_deadline() -> float | None:
    """While tasks run: when they must be done (epoch seconds), for a task that waits on work."""
    return _deadline


def run_tasks(deadline_ms: int, tasks: list[Task] | None = None) -> None:
    """Run queued tasks (the scope's by default), in order, until done or the deadline passes.

    On the main thread a plain function still running at the deadline is interrupted; on any
    other thread (an internal extension's) it cannot be, and the platform's timeout applies.
    """
    global _deadline
    queue = SCOPE.tasks if tasks is None else tasks
    deadline = deadline_ms / 1000 - DEADLINE_MARGIN_S
    _deadline = deadline
    try:
        index = 0
        while index < len(queue):  # a task may queue more tasks
            task = queue[index]
            index += 1
            try:
                _run_one(task, deadline)
            except TaskCutOff:
                log_cut_off(task, len(queue) - index)
                return
            except BaseException as exc:
                if not is_user_error(exc):
                    raise
                _log().exception("after_response task %r failed", task)
    finally:
        _deadline = None


def _run_one(task: Task, deadline: float) -> None:
    if deadline - time.time() <= 0:
        raise TaskCutOff
    result: object = task.fn  # after_response(coroutine_object) is accepted too
    if not isinstance(result, types.CoroutineType):
        with _Alarm(deadline - time.time()):
            result = task.fn(*task.args, **task.kwargs)
    if isinstance(result, types.CoroutineType):
        _await(result, deadline)


def _await(coro: types.CoroutineType[object, object, object], deadline: float) -> None:
    import asyncio

    from lambdakit.runtime import aio

    try:
        # The loop's timeout cancels a task that awaits; the alarm stops one that blocks.
        with _Alarm(deadline - time.time() + 0.002):
            aio.run(coro, timeout=max(deadline - time.time(), 0.0))
    except asyncio.TimeoutError:
        if time.time() >= deadline - 0.005:
            raise TaskCutOff from None
        raise


class _Alarm:
    """Raise TaskCutOff in this (main) thread if the block runs longer than ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self._seconds = max(seconds, 0.001)
        self._previous: object = None
        self._armed = False

    def __enter__(self) -> None:
        import signal

        try:
            self._previous = signal.signal(signal.SIGALRM, _cut_off)
        except ValueError:  # not the main thread: nothing can interrupt the task
            return
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self._seconds)

    def __exit__(self, *exc_info: object) -> None:
        if not self._armed:
            return
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        previous = self._previous if self._previous is not None else signal.SIG_DFL
        signal.signal(signal.SIGALRM, previous)  # type: ignore[arg-type]


def _cut_off(signum: int, frame: types.FrameType | None) -> None:
    raise TaskCutOff


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(_LOGGER)


def log_cut_off(task: object, dropped: int) -> None:
    """An after-response task ran into the invocation's deadline; ``dropped`` were not run."""
    _log().error(
        "after_response task %r cut off at the invocation deadline; %d later task(s) dropped",
        task,
        dropped,
    )
